// How the page prints a probability or threshold: cut to its digits, never rounded up, as the
// Python runner and the reports print them (core/digits.py `down`; tests/test_web_digits.py).

/**
 * `x` with `digits` decimals, the rest cut off toward zero (after dropping float noise below
 * 1e-12, so 0.29 stays 0.29): cut(0.96785, 4) === "0.9678", cut(0.16827, 3) === "0.168".
 */
export function cut(x, digits) {
  if (!Number.isFinite(x)) return String(x);
  const s = x.toFixed(12);
  const dot = s.indexOf(".");
  return digits > 0 ? s.slice(0, dot + 1 + digits) : s.slice(0, dot);
}
