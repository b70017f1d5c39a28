// Widget value rules: clamping, stepping, and the seed's control_after_generate.

/** Round `value` to the widget's step and clamp it to [min, max]. */
export function clampNumber(spec, value) {
  const o = spec.options ?? {};
  let v = Number(value);
  if (!Number.isFinite(v)) v = Number(o.default ?? 0);
  if (o.min != null) v = Math.max(o.min, v);
  if (o.max != null) v = Math.min(o.max, v);
  if (spec.type === "INT") {
    v = Math.round(v);
  } else {
    const r = o.round === false ? null : (o.round ?? o.step ?? null);
    if (r) v = Math.round(v / r) * r;
    v = Number(v.toFixed(10));
  }
  return v;
}

export function numberStep(spec) {
  const o = spec.options ?? {};
  return o.step ?? (spec.type === "INT" ? 1 : 0.01);
}

/** One step up or down. */
export function stepNumber(spec, value, direction) {
  return clampNumber(spec, Number(value) + direction * numberStep(spec));
}

/** The next value of a combo, wrapping. */
export function cycleChoice(spec, value, direction) {
  const choices = spec.choices ?? [];
  if (!choices.length) return value;
  const i = choices.indexOf(value);
  return choices[(i + direction + choices.length) % choices.length];
}

const MAX_SEED = 1125899906842624;  // as ComfyUI: 2**50, keeps seeds exact in JS numbers

/** The value a control_after_generate widget gives its number after a queue. */
export function applyControl(spec, value, mode, random = Math.random) {
  const o = spec.options ?? {};
  const min = o.min ?? 0;
  const max = Math.min(o.max ?? MAX_SEED, MAX_SEED);
  const step = numberStep(spec);
  switch (mode) {
    case "increment": return Math.min(max, Number(value) + step);
    case "decrement": return Math.max(min, Number(value) - step);
    case "randomize": return Math.floor(random() * (max - min + 1)) + min;
    default: return value;
  }
}
