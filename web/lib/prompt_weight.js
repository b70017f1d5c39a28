// Ctrl+Up / Ctrl+Down in a prompt: raise or lower the weight of the selected words,
// written `(words:1.05)` as ComfyUI's editor writes it. With nothing selected the
// innermost bracket around the caret is changed, else the word at the caret. A weight
// that comes back to 1 drops its brackets.

export const WEIGHT_STEP = 0.05;

const WORD_DELIMITERS = new Set(" .,\\/!?%^*;:{}=-_`~()\r\n\t");
const NUMBER = "[+-]?(?:\\d*\\.)?\\d+(?:[eE][+-]?\\d+)?";
const WEIGHTED = new RegExp(`^\\((.*):(${NUMBER})\\)$`, "s");

/** [start, end) of the text inside the innermost "( … )" around `caret`, or null. */
export function enclosingBrackets(text, caret) {
  let start;
  if (text[caret] === "(") start = caret;
  else {
    let depth = 0;
    for (start = caret - 1; start >= 0; start--) {
      if (text[start] === ")") depth++;
      else if (text[start] === "(") { if (depth === 0) break; depth--; }
    }
    if (start < 0) return null;
  }
  let depth = 0;
  for (let end = start + 1; end < text.length; end++) {
    if (text[end] === "(") depth++;
    else if (text[end] === ")") { if (depth === 0) return [start + 1, end]; depth--; }
  }
  return null;
}

function wordAround(text, caret) {
  let start = caret;
  let end = caret;
  while (start > 0 && !WORD_DELIMITERS.has(text[start - 1])) start--;
  while (end < text.length && !WORD_DELIMITERS.has(text[end])) end++;
  return [start, end];
}

/** "(a:1.0)"-style weight of a bracketed chunk, read as ComfyUI reads it (a time like
 * "12:30" is not a weight). */
function weightOf(chunk) {
  const inner = chunk.slice(1, -1);
  const match = WEIGHTED.exec(chunk);
  if (!match || /(?:^|\s)\d{1,2}:\d{2}$/.test(inner)) return { words: inner, weight: 1 };
  return { words: match[1], weight: Number(match[2]) };
}

/** The prompt with the weight of the selection (or the chunk at the caret) changed by
 * `delta`: {text, start, end} with start/end selecting the rewritten chunk, or null
 * when there is nothing to weight. */
export function adjustWeight(text, selStart, selEnd, delta) {
  let [start, end] = [selStart, selEnd];
  if (start === end) {
    [start, end] = enclosingBrackets(text, start) ?? wordAround(text, start);
    if (start === end) return null;
  }
  if (text[end - 1] === " " && end - 1 > start) end -= 1;
  if (text[start - 1] === "(" && text[end] === ")") { start -= 1; end += 1; }
  let chunk = text.slice(start, end);
  if (!(chunk.startsWith("(") && chunk.endsWith(")"))) chunk = `(${chunk})`;
  const { words, weight } = weightOf(chunk);
  const next = Number((weight + delta).toFixed(10));
  const rewritten = next === 1 ? words : `(${words}:${next})`;
  return { text: text.slice(0, start) + rewritten + text.slice(end), start, end: start + rewritten.length };
}
