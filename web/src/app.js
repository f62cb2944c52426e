// The page: file picker, drag-and-drop and camera -> Classifier -> result panel.
// Test hooks on window.skinlesion: ready (Promise), classifyImageData(imageData, source),
// captureFrame() (the current camera frame), results (every file result), last (latest).

import { Classifier, modalityThresholds } from "./classifier.js";
import { cut } from "./digits.js";
import { rgbaToRgb } from "./preprocess.js";

const $ = (id) => document.getElementById(id);
const api = { results: [], last: null, classifier: null };
window.skinlesion = api;
const params = new URLSearchParams(location.search);
const MODALITY_NAMES = { phone: "phone photo" };
const TOP_K = 3;  // classes listed for a softmax model (the Python runner's --top-k is 1)

/** How the page names a modality ("phone" -> "phone photo"; others as the manifest spells them). */
const modalityName = (mod) => (Object.hasOwn(MODALITY_NAMES, mod) ? MODALITY_NAMES[mod] : mod);

/** "threshold 0.42", or "phone photo threshold 0.55" when the model told the modality. */
function thresholdText(r) {
  return `${r.modality ? `${modalityName(r.modality)} ` : ""}threshold ${cut(r.threshold, 3)}`;
}

/** "p(malignant) = 0.412 (threshold 0.300)"; without a positive class (a softmax model),
 *  the top class's probability and no threshold: "p(cat) = 0.871". */
function probText(r, m) {
  if (r.probability == null) return "–";
  const pi = m.positive_index;
  if (pi < 0) return `p(${r.label}) = ${cut(r.probability, 3)}`;
  return `p(${m.labels[pi]}) = ${cut(r.probability, 3)} (${thresholdText(r)})`;
}

/** The TOP_K most likely classes of a softmax model, one line each: "cat 0.871". */
function showTop(r, m) {
  const top = r.status === "ok" && m.output === "softmax" ? r.top.slice(0, TOP_K) : [];
  $("top").replaceChildren(...top.map(([label, p]) => {
    const li = document.createElement("li");
    li.textContent = `${label} ${cut(p, 3)}`;
    return li;
  }));
}

function show(r, fps) {
  const m = api.classifier.manifest;
  $("label").textContent = r.label;
  $("label").className = r.status === "ok" ? r.label : "other";
  $("prob").textContent = probText(r, m);
  showTop(r, m);
  $("type").textContent = r.status === "ok" && r.lesionType
    ? `most likely type: ${r.lesionTypeName} (${cut(r.lesionTypeProbability, 2)})` : "";
  $("fps").textContent = fps ? `${fps.toFixed(1)} FPS, ${r.ms.toFixed(0)} ms` : `${r.ms.toFixed(0)} ms`;
}

/** A position-weighted checksum of the fitted pixels: tests compare it with Python's. */
function checksum(bytes) {
  let h = 0;
  for (let i = 0; i < bytes.length; i++) h += bytes[i] * ((i % 251) + 1);
  return h;
}

function publish(r) {
  const { fitted, ...rest } = r;
  rest.fittedHash = checksum(fitted.data);
  api.last = rest;
  return rest;
}

/** Classify canvas ImageData (RGBA); the result without the fitted pixels. */
api.classifyImageData = async (imageData, source = "<image>") => {
  const r = publish(await api.classifier.classifyRgb(
    rgbaToRgb(imageData.data, imageData.width, imageData.height), source));
  show(r);
  return r;
};

function pixels(source, w, h) {
  const c = new OffscreenCanvas(w, h);
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  return ctx.getImageData(0, 0, w, h);
}

/** The current video frame as RGB, centre-cropped to a square when the model input is
 *  square (a 1:1 copy, as centerSquare would cut it: fewer pixels to read and convert). */
function videoRgb(v) {
  const m = api.classifier.manifest, w = v.videoWidth, h = v.videoHeight;
  const s = m.input_height === m.input_width ? Math.min(w, h) : 0;
  const [cw, ch] = s ? [s, s] : [w, h];
  const c = new OffscreenCanvas(cw, ch);
  const ctx = c.getContext("2d", { willReadFrequently: true });
  if (s) ctx.drawImage(v, (w - s) >> 1, (h - s) >> 1, s, s, 0, 0, s, s);
  else ctx.drawImage(v, 0, 0);
  return rgbaToRgb(ctx.getImageData(0, 0, cw, ch).data, cw, ch);
}

async function classifyFile(file) {
  try {
    // no colour management and EXIF orientation applied, as edge/images.py decodes
    const bmp = await createImageBitmap(file, { imageOrientation: "from-image",
      colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const side = Math.min(bmp.width, bmp.height);
    $("preview").getContext("2d").drawImage(bmp, (bmp.width - side) >> 1, (bmp.height - side) >> 1,
      side, side, 0, 0, 224, 224);
    const r = await api.classifyImageData(pixels(bmp, bmp.width, bmp.height), file.name);
    bmp.close();
    return r;
  } catch (e) {
    const r = { source: file.name, status: "error", label: `${file.name}: cannot decode (${e.message}); use a JPEG or PNG image` };
    $("label").textContent = r.label;
    return r;
  }
}

async function classifyFiles(files) {
  $("camera").hidden = true;
  $("list").replaceChildren();
  for (const f of files) {
    const r = await classifyFile(f);
    api.results.push(r);
    if (files.length > 1) {
      const li = document.createElement("li");
      li.textContent = `${f.name}: ${r.label}` + (r.probability == null ? ""
        : ` (${cut(r.probability, 3)}${r.modality ? `, ${thresholdText(r)}` : ""})`);
      $("list").append(li);
    }
  }
  api.batchDone = (api.batchDone || 0) + 1;
}

/** Latency in this browser (benchmarks/web.py): per-run ms of invoke alone and of the whole
 *  classification (fit + colour constancy + quantize + invoke + post) of an RGBA image. */
api.benchmark = async (imageData, { runs = 100, warmup = 10 } = {}) => {
  const clf = api.classifier, rgb = rgbaToRgb(imageData.data, imageData.width, imageData.height);
  const x = clf.tensor(clf.fit(rgb));
  const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };
  const first = await time(() => clf.invoke(x));
  for (let i = 0; i < warmup; i++) await clf.invoke(x);
  const invoke = [], total = [], fit = [];
  for (let i = 0; i < runs; i++) invoke.push(await time(() => clf.invoke(x)));
  for (let i = 0; i < Math.max(10, runs >> 2); i++) {
    fit.push(await time(() => clf.fit(rgb)));
    total.push(await time(() => clf.classifyRgb(rgb)));
  }
  return { first, invoke, fit, total, threadsUsed: clf.threads, isolated: self.crossOriginIsolated,
           loadMs: api.loadMs, userAgent: navigator.userAgent };
};

// ---------------------------------------------------------------- camera
let stream = null, fps = 0;
api.captureFrame = async () => {
  const v = $("video");
  const r = await api.classifier.classifyRgb(videoRgb(v), "camera");
  const f = r.fitted, rest = publish(r);
  let s = "";
  for (let i = 0; i < f.data.length; i += 8192) s += String.fromCharCode(...f.data.subarray(i, i + 8192));
  return { ...rest, frameWidth: v.videoWidth, frameHeight: v.videoHeight, fittedB64: btoa(s) };
};

async function cameraLoop() {
  const v = $("video");
  let last = performance.now();
  while (stream) {
    if (v.readyState >= 2 && v.videoWidth) {
      const r = publish(await api.classifier.classifyRgb(videoRgb(v), "camera"));
      const now = performance.now();
      fps = fps ? 0.9 * fps + 0.1 * (1000 / (now - last)) : 1000 / (now - last);
      last = now;
      api.fps = fps;
      show(r, fps);
    }
    await new Promise((res) => requestAnimationFrame(res));
  }
}

async function startCamera() {
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; $("cam").textContent = "Start camera"; return; }
  try {
    stream = await navigator.mediaDevices.getUserMedia(
      { video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  } catch (e) {
    $("label").textContent = `camera unavailable (${e.name}): open the page over HTTPS or localhost and allow the camera`;
    return;
  }
  $("camera").hidden = false;
  $("video").srcObject = stream;
  await $("video").play();
  $("cam").textContent = "Stop camera";
  api.cameraOn = true;
  cameraLoop();
}

// ---------------------------------------------------------------- start-up
/** " · threshold 0.300", " · thresholds dermoscopic 0.300, phone photo 0.600", or "" for a
 *  softmax model without a positive class (no threshold). */
function thresholdsText(m) {
  if (m.output === "softmax" && m.positive_index < 0) return "";
  const per = modalityThresholds(m);
  return per.length ? ` · thresholds ${per.map(([k, t]) => `${modalityName(k)} ${cut(t, 3)}`).join(", ")}`
    : ` · threshold ${cut(m.threshold, 3)}`;
}

async function main() {
  const m0 = await (await fetch("manifest.json")).json();
  $("disclaimer").textContent = m0.disclaimer;
  $("trained").textContent = `Trained on: ${m0.trained_on}`;
  const model = document.body.dataset.model;
  const t0 = performance.now();
  api.classifier = await Classifier.load(model, "manifest.json", { threads: Number(params.get("threads") || 0) });
  api.loadMs = performance.now() - t0;
  const m = api.classifier.manifest;
  $("status").textContent = `${model} · onnxruntime-web wasm, ${api.classifier.threads} thread(s)` +
    `${thresholdsText(m)} · T ${cut(m.temperature || 1, 3)}` +
    (m.guard ? " · guard on" : "") + (m.quality && m.quality.enabled ? " · quality gate on" : "");
  $("file").addEventListener("change", (e) => classifyFiles([...e.target.files]));
  $("cam").addEventListener("click", startCamera);
  document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("drag"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("drag"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("drag");
    classifyFiles([...e.dataTransfer.files]);
  });
  $("cam").disabled = $("file").disabled = false;
  if ("serviceWorker" in navigator && !params.has("nosw")) {
    await navigator.serviceWorker.register("sw.js");
    await navigator.serviceWorker.ready;
  }
}

api.ready = main().catch((e) => {
  $("label").textContent = `cannot start: ${e.message}`;
  throw e;
});
