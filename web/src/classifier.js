// The browser copy of edge/classifier.py: one model + its manifest.json -> typed results.
// The runtime is onnxruntime-web (WebAssembly, SIMD, threads when cross-origin isolated),
// vendored next to this file by export/webapp.py; nothing is loaded from another host.
//
// Example (page):
//   const clf = await Classifier.load("model_int8.onnx", "manifest.json");
//   const r = await clf.classifyRgb({ width, height, data: rgbBytes });
//   r.label, r.probability, r.threshold (the modality's, when the model tells it), r.modality

import * as ort from "./vendor/ort.wasm.min.mjs";
import { applyBorder, applyColorConstancy, fitToInput, toModelInput } from "./preprocess.js";
import { qualityReason } from "./quality.js";

/** Newest manifest schema this app reads (edge/manifest.py SCHEMA_VERSION). */
export const SCHEMA = 5;

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
  const n = Math.max(1 + (m.classes || []).length, (m.modality_index ?? -1) + 1);
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

/** Turn one dequantized output vector into a result (label by the modality's threshold,
 *  lesion type, modality, guard), as edge/classifier.py predict_rgb. */
export function interpret(m, vec) {
  const raw = vec[0], p = calibrate(raw, m.temperature || 1);
  const modality = modalityOf(m, vec), threshold = thresholdFor(m, modality);
  const pos = p >= threshold, labels = m.labels || ["benign", "malignant"];
  const pi = m.positive_index ?? 1;
  const r = { status: "ok", label: labels[pos ? pi : 1 - pi], probability: p,
              rawProbability: raw, threshold, modality, vector: Array.from(vec),
              classProbabilities: {}, lesionType: null, lesionTypeName: null,
              lesionTypeProbability: null, guardScore: null, reason: "" };
  (m.classes || []).forEach((c, i) => { r.classProbabilities[c] = vec[1 + i]; });
  if ((m.classes || []).length) {
    const top = m.classes.reduce((a, c) => (r.classProbabilities[c] > r.classProbabilities[a] ? c : a));
    r.lesionType = top;
    r.lesionTypeName = (m.class_names || {})[top] || top;
    r.lesionTypeProbability = r.classProbabilities[top];
  }
  if (m.guard) {
    r.guardScore = vec[m.guard.index];
    if (r.guardScore < m.guard.threshold) {
      // as the Python runner: no label, so no modality and the manifest's threshold
      Object.assign(r, { status: "not_a_lesion", label: "no lesion in view", modality: "",
                         threshold: m.threshold });
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
    const manifest = await (await fetch(manifestUrl)).json();
    if ((manifest.schema || 1) > SCHEMA) {
      throw new Error(`manifest schema ${manifest.schema} is newer than this app (${SCHEMA}); rebuild it`);
    }
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

  /** The model's input tensor for a fitted image: border fill, colour constancy, then float32
   *  or quantized (edge.preprocess.apply_corrections). */
  tensor(fitted) {
    const m = this.manifest, s = this.inputSpec;
    const img = applyColorConstancy(applyBorder(fitted, m.border), m.color_constancy);
    const data = toModelInput(img, s.dtype, s.scale, s.zero_point);
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
            rawProbability: null, threshold: m.threshold, modality: "", vector: null };
    } else {
      r = interpret(m, await this.run(fitted));
    }
    return { source, ...r, ms: performance.now() - t0, fitted };
  }
}
