// Word wrapping for multiline text boxes, kept apart from the canvas so it can be
// tested: `measure(text)` gives a string's drawn width (the canvas' measureText).

/** The lines `text` wraps to at `width`: explicit newlines kept, words never split
 * (a word wider than the box is a line of its own; the renderer trims it). Stops after
 * `limit` lines, so drawing a huge prompt measures only what can show. */
export function wrapLines(text, width, measure, limit = Infinity) {
  const lines = [];
  for (const para of String(text).split("\n")) {
    let line = "";
    for (const word of para.split(" ")) {
      const joined = line ? `${line} ${word}` : word;
      if (line && measure(joined) > width) {
        lines.push(line);
        if (lines.length >= limit) return lines;
        line = word;
      } else line = joined;
    }
    lines.push(line);
    if (lines.length >= limit) return lines;
  }
  return lines;
}

/** The lines a box with room for `room` lines shows: all of them when they fit, else
 * the first `room`, the last ending in "…" so a cut-off text says so. */
export function visibleLines(lines, room) {
  if (lines.length <= room) return { shown: lines, truncated: false };
  const shown = lines.slice(0, room);
  shown[room - 1] = `${shown[room - 1]}…`;
  return { shown, truncated: true };
}

/** The offset in the original text of `column` on wrapped line `line`: every line
 * break that wrapLines made consumed one character (a newline or a space). */
export function textOffset(lines, line, column) {
  let offset = 0;
  for (let i = 0; i < line && i < lines.length; i++) offset += lines[i].length + 1;
  return offset + Math.min(column, lines[line]?.length ?? 0);
}

/** The column on `text` nearest to x (from the line's left edge), by measured widths. */
export function columnAt(text, x, measure) {
  let best = 0;
  let bestDistance = Math.abs(x);
  for (let i = 1; i <= text.length; i++) {
    const distance = Math.abs(measure(text.slice(0, i)) - x);
    if (distance < bestDistance) { best = i; bestDistance = distance; }
  }
  return best;
}
