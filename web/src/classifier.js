// The browser copy of edge/classifier.py: one model + its manifest.json -> typed results.
// The runtime is onnxruntime-web (WebAssembly, SIMD, threads when cross-origin isolated),
// vendored next to this file by export/webapp.py; nothing is loaded from another host.
//
// Example (page):
//   const clf = await Classifier.load("model_int8.onnx", "manifest.json");
//   const r = await clf.classifyRgb({ width, height, data: rgbBytes });
//   r.label, r.probability, r.threshold (the modality's, when the model tells it; null for a
//   softmax model without a positive class), r.modality, r.top ([label, probability], most
//   likely first)

import * as ort from "./vendor/ort.wasm.min.mjs";
import { applyBorder, applyColorConstancy, fitToInput, toModelInput } from "./preprocess.js";
import { qualityReason } from "./quality.js";

/** Newest manifest schema this app reads (edge/manifest.py SCHEMA_VERSION). */
export const SCHEMA = 6;

/** Top-level manifest fields this app understands (the Manifest dataclass fields). */
const FIELDS = new Set(["input_height", "input_width", "channels", "color_order", "pixel_range",
  "resize", "color_constancy", "border", "labels", "classes", "class_names", "malignant_classes",
  "modalities", "modality_index", "modality_thresholds", "modality_threshold_rules", "guard",
  "quality", "positive_index", "output", "threshold", "threshold_rule", "temperature",
  "model_name", "run_id", "trained_on", "disclaimer", "metrics", "versions", "artifacts",
  "created", "schema"]);

/** Manifest defaults of the fields validateManifest checks (a field an older export left out). */
const DEFAULTS = { output: "sigmoid", color_order: "RGB", pixel_range: [0, 255],
  resize: "center-crop-square,area", color_constancy: "none", border: "none", channels: 3,
  labels: ["benign", "malignant"], positive_index: 1 };

/** The values each named field may take (edge/manifest.py OUTPUTS, COLOR_ORDERS, ...). */
const KNOWN = { output: ["sigmoid", "softmax"], color_order: ["RGB", "BGR"],
  resize: ["center-crop-square,area"], color_constancy: ["none", "shades_of_gray"],
  border: ["none", "fill_dark"] };

const FIX = "export the model again with this version, or rebuild the app with the version that exported it";

/** A value as Python's repr writes it in the runner's messages ('a', [1, 2]). */
const repr = (v) => (typeof v === "string" ? `'${v}'`
  : Array.isArray(v) ? `[${v.map(repr).join(", ")}]` : String(v));

/** The manifest with defaults filled in, or an Error naming the first field this app does not
 *  understand (Manifest.from_dict, then Manifest.validate, in the same order). */
export function validateManifest(manifest) {
  if (!manifest || typeof manifest !== "object" || Array.isArray(manifest)) {
    throw new Error("manifest is not a JSON object");
  }
  if ((manifest.schema || 1) > SCHEMA) {
    throw new Error(`manifest schema ${manifest.schema} is newer than this app (${SCHEMA}); rebuild it`);
  }
  const unknown = Object.keys(manifest).filter((k) => !FIELDS.has(k)).sort();
  if (unknown.length) {
    throw new Error(`manifest field '${unknown[0]}' is not understood by this app (schema ${SCHEMA}); ${FIX}`);
  }
  const m = { ...DEFAULTS, ...manifest };
  const bad = (name, known) => new Error(
    `manifest field ${name}=${repr(m[name])} is not understood (known: ${known.join(", ")}); ${FIX}`);
  for (const [name, known] of Object.entries(KNOWN)) if (!known.includes(m[name])) throw bad(name, known);
  const range = m.pixel_range;
  if (!Array.isArray(range) || range.length !== 2 || !(Number(range[0]) < Number(range[1]))) {
    throw new Error(`manifest field pixel_range=${repr(range)} is not [low, high] with low < high`);
  }
  if (m.channels !== 3) throw bad("channels", [3]);
  const labels = m.labels, n = Array.isArray(labels) ? labels.length : 0;
  if (n < 2 || new Set(labels).size !== n) {
    throw new Error(`manifest field labels=${repr(labels)} needs 2 or more distinct class names`);
  }
  if (m.output === "sigmoid" && (n !== 2 || ![0, 1].includes(m.positive_index))) {
    throw new Error("a sigmoid manifest needs 2 labels and positive_index 0 or 1, " +
                    `got ${repr(labels)} and ${repr(m.positive_index)}`);
  }
  if (!Number.isInteger(m.positive_index) || m.positive_index < -1 || m.positive_index >= n) {
    throw bad("positive_index", Array.from({ length: n + 1 }, (_, i) => i - 1));
  }
  return m;
}

/** Calibrated probability sigmoid(logit(p) / T), as Manifest.calibrate. */
export function calibrate(p, temperature) {
  const q = Math.min(Math.max(p, 1e-7), 1 - 1e-7);
  return 1 / (1 + Math.exp(-Math.log(q / (1 - q)) / temperature));
}

/** The manifest as one artifact uses it: its own threshold and per-modality thresholds
 *  (Manifest.for_artifact: only when the artifact has a threshold; an artifact without
 *  modality_thresholds keeps the manifest's). */
export function forArtifact(manifest, modelFile) {
  const name = modelFile.split("/").pop();
  const art = Object.values(manifest.artifacts || {}).find((a) => a.file.split("/").pop() === name);
  const m = { ...manifest, artifact: art || null };
  if (art && art.threshold !== null && art.threshold !== undefined) {
    m.threshold = art.threshold;
    m.threshold_rule = art.threshold_rule || manifest.threshold_rule;
    const own = art.modality_thresholds || {};
    m.modality_thresholds = { ...(Object.keys(own).length ? own : manifest.modality_thresholds || {}) };
  }
  return m;
}

/** Output-vector length the manifest describes (Manifest.output_size). */
export function outputSize(m) {
  const head = m.output === "softmax" ? m.labels.length : 1 + (m.classes || []).length;
  const n = Math.max(head, (m.modality_index ?? -1) + 1);
  return m.guard ? Math.max(n, m.guard.index + 1) : n;
}

/** The image's modality from its output vector, "" without a modality output
 *  (Manifest.modality_of): modalities[1] when vec[modality_index] >= 0.5, else modalities[0]. */
export function modalityOf(m, vec) {
  const i = m.modality_index ?? -1, names = m.modalities || [];
  if (i < 0 || names.length < 2) return "";
  return names[Number(vec[i]) >= 0.5 ? 1 : 0];
}

/** The operating threshold for an image of `modality` (Manifest.threshold_for): its entry of
 *  modality_thresholds, else the manifest's threshold. */
export function thresholdFor(m, modality) {
  const t = m.modality_thresholds || {};
  return Number(Object.hasOwn(t, modality) ? t[modality] : m.threshold);
}

/** Per-modality thresholds as [modality, threshold] pairs, [] when the manifest has no
 *  modality output or no modality thresholds (then m.threshold is the only one). */
export function modalityThresholds(m) {
  const names = m.modalities || [];
  if ((m.modality_index ?? -1) < 0 || names.length < 2) return [];
  if (!Object.keys(m.modality_thresholds || {}).length) return [];
  return names.map((k) => [k, thresholdFor(m, k)]);
}

/** Temperature scaling of a softmax output: softmax(log(max(p, 1e-12)) / T)
 *  (edge/manifest.py _soften). */
export function soften(p, temperature) {
  const z = p.map((v) => Math.log(Math.max(v, 1e-12)) / temperature);
  const zmax = Math.max(...z), e = z.map((v) => Math.exp(v - zmax));
  const sum = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / sum);
}

// Manifest.read, sigmoid layout: P(positive) at index 0, calibrated, at the modality's threshold.
function readSigmoid(m, vec) {
  const raw = vec[0], p = calibrate(raw, m.temperature || 1);
  const modality = modalityOf(m, vec), threshold = thresholdFor(m, modality);
  const labels = m.labels || DEFAULTS.labels, pos = m.positive_index ?? 1, neg = 1 - pos;
  const top = [[labels[pos], p], [labels[neg], 1 - p]].sort((x, y) => y[1] - x[1]);
  return { label: labels[p >= threshold ? pos : neg], probability: p, rawProbability: raw,
           threshold, top, modality };
}

// Manifest._read_softmax: one probability per label, clipped at 0, temperature-scaled.
function readSoftmax(m, vec) {
  const labels = m.labels, t = m.temperature || 1, pos = m.positive_index;
  const raw = Array.from(vec).slice(0, labels.length).map((v) => Math.max(v, 0));
  const probs = t === 1 ? raw : soften(raw, t);
  const order = labels.map((_, i) => i).sort((i, j) => probs[j] - probs[i] || i - j);
  const top = order.map((i) => [labels[i], probs[i]]);
  if (pos < 0) {
    const i = order[0];
    return { label: labels[i], probability: probs[i], rawProbability: raw[i], threshold: null,
             top, modality: "" };
  }
  const threshold = Number(m.threshold), i = probs[pos] >= threshold ? pos : order.find((j) => j !== pos);
  return { label: labels[i], probability: probs[pos], rawProbability: raw[pos], threshold, top,
           modality: "" };
}

/** What one output vector says, as Manifest.read: label, probability (calibrated P(positive),
 *  or P(label) without a positive class), rawProbability, threshold (null without a positive
 *  class), top ([label, probability] pairs, most likely first) and modality. */
export function readVector(m, vec) {
  return m.output === "softmax" ? readSoftmax(m, vec) : readSigmoid(m, vec);
}

/** The most likely lesion type of a sigmoid model with classes (null fields without). */
function lesionType(m, vec) {
  const probs = {}, classes = m.output === "softmax" ? [] : m.classes || [];
  classes.forEach((c, i) => { probs[c] = vec[1 + i]; });
  if (!classes.length) {
    return { classProbabilities: probs, lesionType: null, lesionTypeName: null, lesionTypeProbability: null };
  }
  const top = classes.reduce((a, c) => (probs[c] > probs[a] ? c : a));
  return { classProbabilities: probs, lesionType: top, lesionTypeName: (m.class_names || {})[top] || top,
           lesionTypeProbability: probs[top] };
}

/** Turn one dequantized output vector into a result (readVector, lesion type, guard), as
 *  edge/classifier.py predict_rgb. */
export function interpret(m, vec) {
  const r = { status: "ok", ...readVector(m, vec), vector: Array.from(vec), ...lesionType(m, vec),
              guardScore: null, reason: "" };
  if (m.guard) {
    r.guardScore = vec[m.guard.index];
    if (r.guardScore < m.guard.threshold) {
      // as the Python runner: no label, so no modality, no top list and the manifest's threshold
      Object.assign(r, { status: "not_a_lesion", label: "no lesion in view", modality: "",
                         threshold: m.threshold, top: [] });
    }
  }
  return r;
}

export class Classifier {
  constructor(session, manifest) {
    this.session = session;
    this.manifest = manifest;
    const a = manifest.artifact || {};
    this.inputSpec = a.input || { dtype: "float32", scale: 0, zero_point: 0 };
    this.outputSpec = a.output || { dtype: "float32", scale: 0, zero_point: 0 };
  }

  /** Fetch manifest + model, open an onnxruntime-web session (threads: 0 = runtime default). */
  static async load(modelUrl, manifestUrl, { threads = 0 } = {}) {
    const manifest = validateManifest(await (await fetch(manifestUrl)).json());
    ort.env.wasm.wasmPaths = new URL("./vendor/", import.meta.url).href;
    ort.env.wasm.numThreads = threads || (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
    const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    return new Classifier(session, forArtifact(manifest, modelUrl));
  }

  get threads() { return ort.env.wasm.numThreads; }

  /** Fitted uint8 RGB image (centre crop + resize, before the border fill and colour constancy). */
  fit(rgb) {
    const m = this.manifest;
    return fitToInput(rgb, m.input_height, m.input_width);
  }

  /** The model's input tensor for a fitted image: border fill, colour constancy, then the
   *  manifest's pixel_range and color_order, as float32 or quantized
   *  (edge.preprocess.apply_corrections, to_model_input). */
  tensor(fitted) {
    const m = this.manifest, s = this.inputSpec;
    const img = applyColorConstancy(applyBorder(fitted, m.border), m.color_constancy);
    const data = toModelInput(img, s.dtype, s.scale, s.zero_point, m.pixel_range, m.color_order);
    const dtype = data instanceof Float32Array ? "float32" : s.dtype;
    return new ort.Tensor(dtype, data, [1, m.input_height, m.input_width, m.channels || 3]);
  }

  /** One inference on a prepared tensor; the raw output values. */
  async invoke(x) {
    const out = await this.session.run({ [this.session.inputNames[0]]: x });
    return out[this.session.outputNames[0]].data;
  }

  /** Run the model on a fitted image; the dequantized output vector. */
  async run(fitted) {
    const m = this.manifest, o = this.outputSpec, y = await this.invoke(this.tensor(fitted));
    if (y.length !== outputSize(m)) {
      throw new Error(`model output has ${y.length} values, its manifest describes ${outputSize(m)}; use the manifest exported with this model`);
    }
    return Array.from(y, (v) => (o.scale > 0 ? (v - o.zero_point) * o.scale : v));
  }

  /** Classify one uint8 RGB image: quality gate, model, calibration, threshold, guard. */
  async classifyRgb(rgb, source = "<image>") {
    const t0 = performance.now(), m = this.manifest;
    const fitted = this.fit(rgb);
    const reason = qualityReason(m.quality, fitted, rgb.height, rgb.width);
    let r;
    if (reason) {
      r = { status: "unusable", label: `image unusable: ${reason}`, reason, probability: null,
            rawProbability: null, threshold: m.threshold, modality: "", vector: null, top: [] };
    } else {
      r = interpret(m, await this.run(fitted));
    }
    return { source, ...r, ms: performance.now() - t0, fitted };
  }
}
