// The browser copy of edge/preprocess.py: RGB uint8 image -> model input, driven by the manifest.
// Keep in step with edge/preprocess.py (centre square, OpenCV INTER_AREA / INTER_LINEAR resize
// replicated bit for bit,
// the dark-border fill, Shades of Gray colour constancy, input range, colour order and quantization). Plain ES module: runs in the page and
// in Node (tests/test_web_preprocess.py compares it with cv2 pixel by pixel).
//
// Example (Node):
//   import { fitToInput } from "./preprocess.js";
//   const img = { width: 400, height: 300, data: new Uint8Array(400 * 300 * 3) };
//   fitToInput(img, 224, 224).width   // 224

const f32 = Math.fround;

/** Round half to even, as OpenCV's cvRound (lrint) does. */
export function roundEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const sat = (x) => Math.min(255, Math.max(0, roundEven(x)));

/** RGBA bytes (canvas ImageData) -> {width, height, data: RGB Uint8Array}. */
export function rgbaToRgb(rgba, width, height) {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < out.length; i += 4, j += 3) {
    out[j] = rgba[i]; out[j + 1] = rgba[i + 1]; out[j + 2] = rgba[i + 2];
  }
  return { width, height, data: out };
}

/** Centre crop to a square (edge.preprocess.center_square). */
export function centerSquare(img) {
  const s = Math.min(img.width, img.height);
  const top = (img.height - s) >> 1, left = (img.width - s) >> 1;
  if (s === img.width && s === img.height) return img;
  const out = new Uint8Array(s * s * 3);
  for (let y = 0; y < s; y++) {
    const src = ((top + y) * img.width + left) * 3;
    out.set(img.data.subarray(src, src + s * 3), y * s * 3);
  }
  return { width: s, height: s, data: out };
}

// OpenCV computeResizeAreaTab: (destination index, source index, float32 weight) triples,
// as three typed arrays.
function areaTab(ssize, dsize, scale) {
  const di = [], si = [], al = [];
  const push = (d, s, a) => { di.push(d); si.push(s); al.push(a); };
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cell = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) push(dx, sx1 - 1, (sx1 - fsx1) / cell);
    for (let sx = sx1; sx < sx2; sx++) push(dx, sx, 1.0 / cell);
    if (fsx2 - sx2 > 1e-3) push(dx, sx2, Math.min(Math.min(fsx2 - sx2, 1), cell) / cell);
  }
  return { di: Int32Array.from(di), si: Int32Array.from(si), al: Float32Array.from(al) };
}

// OpenCV resizeArea_ (non-integer shrink): float32 accumulation, cvRound at the end.
function resizeAreaGeneral(img, dw, dh, sx, sy) {
  const xt = areaTab(img.width, dw, sx), yt = areaTab(img.height, dh, sy);
  const W = dw * 3, out = new Uint8Array(dh * W), src = img.data, nx = xt.di.length;
  const buf = new Float32Array(W), sum = new Float32Array(W);
  let prev = yt.di[0];
  for (let j = 0; j < yt.di.length; j++) {
    const dy = yt.di[j], beta = yt.al[j], S = yt.si[j] * img.width * 3;
    buf.fill(0);
    for (let k = 0; k < nx; k++) {
      const d = xt.di[k] * 3, s = S + xt.si[k] * 3, a = xt.al[k];
      buf[d] = f32(buf[d] + f32(src[s] * a));
      buf[d + 1] = f32(buf[d + 1] + f32(src[s + 1] * a));
      buf[d + 2] = f32(buf[d + 2] + f32(src[s + 2] * a));
    }
    if (dy !== prev) {
      for (let i = 0; i < W; i++) { out[prev * W + i] = sat(sum[i]); sum[i] = f32(beta * buf[i]); }
      prev = dy;
    } else {
      for (let i = 0; i < W; i++) sum[i] = f32(sum[i] + f32(beta * buf[i]));
    }
  }
  for (let i = 0; i < W; i++) out[prev * W + i] = sat(sum[i]);
  return { width: dw, height: dh, data: out };
}

// OpenCV resizeAreaFast_ (integer shrink factors): integer box sum; 2x2 uses the SIMD
// rounding (sum + 2) >> 2, other factors cvRound(sum * (1/area)) in float32.
function resizeAreaFast(img, dw, dh, kx, ky) {
  const out = new Uint8Array(dh * dw * 3), area = kx * ky, inv = f32(1 / area);
  for (let dy = 0; dy < dh; dy++) {
    for (let dx = 0; dx < dw; dx++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let y = 0; y < ky; y++) {
          const row = (dy * ky + y) * img.width;
          for (let x = 0; x < kx; x++) s += img.data[(row + dx * kx + x) * 3 + c];
        }
        out[(dy * dw + dx) * 3 + c] = area === 4 ? (s + 2) >> 2 : sat(f32(s * inv));
      }
    }
  }
  return { width: dw, height: dh, data: out };
}

/** cv2.resize(..., INTER_AREA) for shrinking, exactly (uint8, 3 channels). */
export function resizeArea(img, dw, dh) {
  const sx = 1 / (dw / img.width), sy = 1 / (dh / img.height);
  const kx = Math.round(sx), ky = Math.round(sy);
  if (Math.abs(sx - kx) < Number.EPSILON && Math.abs(sy - ky) < Number.EPSILON) {
    return resizeAreaFast(img, dw, dh, kx, ky);
  }
  return resizeAreaGeneral(img, dw, dh, sx, sy);
}

// OpenCV's fixed-point bilinear coefficients (INTER_RESIZE_COEF_SCALE = 2048) and offsets.
function linearTab(ssize, dsize, clampX) {
  const scale = 1 / (dsize / ssize), ofs = new Int32Array(dsize), a = new Int32Array(dsize * 2);
  const short = (v) => Math.min(32767, Math.max(-32768, roundEven(v)));
  for (let d = 0; d < dsize; d++) {
    let fx = f32((d + 0.5) * scale - 0.5), sx = Math.floor(fx);
    fx = f32(fx - sx);
    if (clampX && sx < 0) { fx = 0; sx = 0; }
    if (clampX && sx >= ssize - 1) { fx = 0; sx = ssize - 1; }
    ofs[d] = sx;
    a[2 * d] = short(f32(f32(1 - fx) * 2048));
    a[2 * d + 1] = short(f32(fx * 2048));
  }
  return { ofs, a };
}

/** cv2.resize(..., INTER_LINEAR) for uint8 RGB, exactly as OpenCV's SIMD path computes it:
 *  horizontal pass in integers, vertical ((r0>>4)*b0>>16) + ((r1>>4)*b1>>16) + 2 >> 2. */
export function resizeLinear(img, dw, dh) {
  const { width: sw, height: sh, data } = img, W = dw * 3;
  const X = linearTab(sw, dw, true), Y = linearTab(sh, dh, false), simd = W >= 16;
  const hrow = (sy) => {
    const out = new Int32Array(W), row = sy * sw * 3;
    for (let dx = 0; dx < dw; dx++) {
      const sx = X.ofs[dx], a0 = X.a[2 * dx], a1 = X.a[2 * dx + 1], p = row + sx * 3;
      for (let c = 0; c < 3; c++) {
        out[dx * 3 + c] = sx + 1 < sw ? data[p + c] * a0 + data[p + 3 + c] * a1 : data[p + c] * 2048;
      }
    }
    return out;
  };
  const out = new Uint8Array(dh * W), clampY = (y) => Math.min(Math.max(y, 0), sh - 1);
  for (let dy = 0; dy < dh; dy++) {
    const r0 = hrow(clampY(Y.ofs[dy])), r1 = hrow(clampY(Y.ofs[dy] + 1));
    const b0 = Y.a[2 * dy], b1 = Y.a[2 * dy + 1];
    for (let x = 0; x < W; x++) {
      const v = simd
        ? ((((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16) + 2) >> 2
        : (r0[x] * b0 + r1[x] * b1 + (1 << 21)) >> 22;
      out[dy * W + x] = Math.min(255, Math.max(0, v));
    }
  }
  return { width: dw, height: dh, data: out };
}

/** Centre square, then resize to (height, width): area when shrinking, linear otherwise.
 *  (A non-square input that shrinks on one axis and grows on the other is not replicated
 *  exactly: OpenCV then uses its own area-upscaling weights. Exported models are square.) */
export function fitToInput(img, height, width) {
  const sq = height === width ? centerSquare(img) : img;
  if (sq.width === width && sq.height === height) return sq;
  const shrink = sq.height > height || sq.width > width;
  return shrink ? resizeArea(sq, width, height) : resizeLinear(sq, width, height);
}

/** Shades of Gray colour constancy, as edge.preprocess.shades_of_gray defines it (p = 6).
 *  float32 throughout, summed in pixel order as numpy's mean over axis 0 does. */
export function shadesOfGray(img, p = 6) {
  const n = img.width * img.height, acc = [0, 0, 0];
  for (let i = 0; i < n * 3; i += 3) {
    for (let c = 0; c < 3; c++) acc[c] = f32(acc[c] + f32(Math.pow(f32(img.data[i + c] / 255), p)));
  }
  const e = acc.map((a) => f32(f32(Math.pow(f32(a / n), f32(1 / p))) * 255));
  const mean = f32(f32(f32(e[0] + e[1]) + e[2]) / 3);
  const gain = e.map((v) => (v > 0 ? f32(mean / Math.max(v, 1e-12)) : 1));
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = sat(f32(img.data[i] * gain[i % 3]));
  return { width: img.width, height: img.height, data: out };
}

/** "none" -> unchanged, "shades_of_gray" -> shadesOfGray; unknown names throw. */
export function applyColorConstancy(img, method) {
  if (!method || method === "none") return img;
  if (method === "shades_of_gray") return shadesOfGray(img);
  throw new Error(`unknown colour constancy "${method}"; use none or shades_of_gray`);
}

/** Fill a dark dermoscope ring or corners, as edge.preprocess.fill_dark_border defines it:
 *  grey (4899 R + 9617 G + 1868 B + 8192) >> 14 < 40, 8-connected to the image edge; if that
 *  region is 0.5%..70% of the image, grow it by 4 px (9x9 square) and give it the per-channel
 *  median (half dropped) of the pixels outside. Otherwise the same object is returned. */
export function fillDarkBorder(img, level = 40, grow = 4, minShare = 0.005, maxShare = 0.7) {
  const w = img.width, h = img.height, n = w * h, d = img.data;
  const dark = new Uint8Array(n), mask = new Uint8Array(n), queue = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    dark[i] = ((d[3 * i] * 4899 + d[3 * i + 1] * 9617 + d[3 * i + 2] * 1868 + 8192) >> 14) < level;
  }
  let head = 0, tail = 0;
  const seed = (i) => { if (dark[i] && !mask[i]) { mask[i] = 1; queue[tail++] = i; } };
  for (let x = 0; x < w; x++) { seed(x); seed((h - 1) * w + x); }
  for (let y = 0; y < h; y++) { seed(y * w); seed(y * w + w - 1); }
  while (head < tail) {
    const i = queue[head++], x = i % w, y = (i - x) / w;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx, yy = y + dy;
        if ((dx || dy) && xx >= 0 && xx < w && yy >= 0 && yy < h) seed(yy * w + xx);
      }
    }
  }
  const share = tail / n;
  if (!(share >= minShare && share <= maxShare)) return img;
  const row = new Uint8Array(n), grown = new Uint8Array(n);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let v = 0;
      for (let xx = Math.max(0, x - grow); xx <= Math.min(w - 1, x + grow) && !v; xx++) v = mask[y * w + xx];
      row[y * w + x] = v;
    }
  }
  let outside = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let v = 0;
      for (let yy = Math.max(0, y - grow); yy <= Math.min(h - 1, y + grow) && !v; yy++) v = row[yy * w + x];
      grown[y * w + x] = v;
      outside += 1 - v;
    }
  }
  if (outside === 0) return img;
  const med = [0, 1, 2].map((c) => {
    const hist = new Int32Array(256);
    for (let i = 0; i < n; i++) if (!grown[i]) hist[d[3 * i + c]]++;
    const kth = (k) => { let s = 0; for (let v = 0; v < 256; v++) { s += hist[v]; if (s > k) return v; } return 255; };
    return outside % 2 ? kth((outside - 1) / 2) : Math.floor((kth(outside / 2 - 1) + kth(outside / 2)) / 2);
  });
  const out = new Uint8Array(d);
  for (let i = 0; i < n; i++) if (grown[i]) { out[3 * i] = med[0]; out[3 * i + 1] = med[1]; out[3 * i + 2] = med[2]; }
  return { width: w, height: h, data: out };
}

/** "none" -> unchanged, "fill_dark" -> fillDarkBorder; unknown names throw. */
export function applyBorder(img, method) {
  if (!method || method === "none") return img;
  if (method === "fill_dark") return fillDarkBorder(img);
  throw new Error(`unknown border correction "${method}"; use none or fill_dark`);
}

/** The model value of each uint8 level: v * (hi - lo) / 255 + lo in float32
 *  (edge.preprocess.model_pixels; the identity for [0, 255]). */
export function modelPixelLut(pixelRange = [0, 255]) {
  const lo = f32(Number(pixelRange[0])), k = f32((Number(pixelRange[1]) - Number(pixelRange[0])) / 255);
  return Float32Array.from({ length: 256 }, (_, v) => f32(f32(v * k) + lo));
}

/** uint8 RGB -> flat model input of dtype (float32, or int8/uint8 quantized with scale/zp),
 *  holding the pixels mapped to pixelRange in colorOrder (edge.preprocess.to_model_input). */
export function toModelInput(img, dtype, scale = 0, zeroPoint = 0, pixelRange = [0, 255], colorOrder = "RGB") {
  let lut = modelPixelLut(pixelRange), out = new Float32Array(img.data.length);
  if ((dtype === "int8" || dtype === "uint8") && scale > 0) {
    const [lo, hi] = dtype === "int8" ? [-128, 127] : [0, 255], s = f32(scale);
    lut = lut.map((x) => Math.min(hi, Math.max(lo, roundEven(f32(f32(x / s) + zeroPoint)))));
    out = dtype === "int8" ? new Int8Array(out.length) : new Uint8Array(out.length);
  }
  const d = img.data, [r, b] = colorOrder === "BGR" ? [2, 0] : [0, 2];
  for (let i = 0; i < out.length; i += 3) {
    out[i] = lut[d[i + r]]; out[i + 1] = lut[d[i + 1]]; out[i + 2] = lut[d[i + b]];
  }
  return out;
}
