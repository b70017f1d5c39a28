// Arithmetic typed into a number field ("2*3", "512 + 64", "(1+2)/4"), as ComfyUI's
// number widgets accept it. A small parser of + - * / % ** and brackets: never eval.

/** The value of `text`, or null when it is not a plain arithmetic expression. */
export function evaluateArithmetic(text) {
  const tokens = String(text).match(/\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?|\*\*|[-+*/%()]|\S/gi) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const take = () => tokens[i++];

  function primary() {
    const t = take();
    if (t === "(") {
      const v = sum();
      if (take() !== ")") throw new Error("unclosed bracket");
      return v;
    }
    if (t === "-") return -unary();
    if (t === "+") return unary();
    if (t !== undefined && /^(\d|\.\d)/.test(t)) return Number(t);
    throw new Error(`unexpected ${t ?? "end"}`);
  }
  function unary() { return primary(); }
  function power() {
    const base = unary();
    if (peek() === "**") { take(); return base ** power(); }  // right-associative
    return base;
  }
  function product() {
    let v = power();
    while (["*", "/", "%"].includes(peek())) {
      const op = take();
      const r = power();
      v = op === "*" ? v * r : op === "/" ? v / r : v % r;
    }
    return v;
  }
  function sum() {
    let v = product();
    while (peek() === "+" || peek() === "-") v = take() === "+" ? v + product() : v - product();
    return v;
  }

  if (!tokens.length) return null;
  try {
    const value = sum();
    return i === tokens.length && Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}
