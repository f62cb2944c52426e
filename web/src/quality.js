// The browser copy of the manifest's QualityGate (edge/manifest.py): checks that make an
// input "unusable" before the model sees it. Implemented exactly as the docstring defines:
// luma Y = 0.299 R + 0.587 G + 0.114 B in float32 on the fitted uint8 RGB image (before
// colour constancy); the first failing check, in this order, is the reason.
//
// Example (Node):
//   import { qualityReason } from "./quality.js";
//   const img = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3) };
//   qualityReason({ enabled: true, min_side: 32, min_brightness: 20 }, img, 64, 64)  // "too_dark"

const f32 = Math.fround;

/** Float32 luma of a uint8 RGB image. */
export function luma(img) {
  const n = img.width * img.height, y = new Float32Array(n), d = img.data;
  const r = f32(0.299), g = f32(0.587), b = f32(0.114);
  for (let i = 0; i < n; i++) {
    y[i] = f32(f32(f32(r * d[3 * i]) + f32(g * d[3 * i + 1])) + f32(b * d[3 * i + 2]));
  }
  return y;
}

function median(values) {
  const s = Float32Array.from(values).sort(), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const mean = (a) => a.reduce((x, v) => x + v, 0) / a.length;

/** Variance of the 4-neighbour Laplacian of Y over interior pixels (no padding). */
export function sharpness(y, w, h) {
  if (w < 3 || h < 3) return 0;
  const lap = new Float64Array((w - 2) * (h - 2));
  let k = 0;
  for (let r = 1; r < h - 1; r++) {
    for (let c = 1; c < w - 1; c++) {
      const i = r * w + c;
      lap[k++] = y[i - w] + y[i + w] + y[i - 1] + y[i + 1] - 4 * y[i];
    }
  }
  const m = mean(lap);
  return lap.reduce((acc, v) => acc + (v - m) * (v - m), 0) / lap.length;
}

/** Measurements the gate decides on (shown in the page, compared in tests). */
export function qualityStats(fitted) {
  const y = luma(fitted), med = median(y);
  return {
    brightness: mean(y),
    median: med,
    yy: y,
    sharpness: sharpness(y, fitted.width, fitted.height),
  };
}

/** The first failing check's name, or "" when the image is usable (or the gate is off). */
export function qualityReason(gate, fitted, origHeight, origWidth) {
  if (!gate || !gate.enabled) return "";
  const q = { min_side: 32, min_brightness: 20, max_brightness: 240, flat_tolerance: 6,
              max_flat_fraction: 0.9, min_sharpness: 0, ...gate };
  if (Math.min(origHeight, origWidth) < q.min_side) return "too_small";
  const s = qualityStats(fitted);
  if (s.brightness < q.min_brightness) return "too_dark";
  if (s.brightness > q.max_brightness) return "too_bright";
  let flat = 0;
  for (const v of s.yy) if (Math.abs(v - s.median) <= q.flat_tolerance) flat++;
  if (flat / s.yy.length > q.max_flat_fraction) return "flat";
  if (s.sharpness < q.min_sharpness) return "blurred";
  return "";
}
