// Reading the workflow ComfyUI and Loom store in PNG text chunks
// (tEXt "workflow" and "prompt"; iTXt too; A1111 stores "parameters").

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** The text chunks of a PNG as {keyword: text}; throws if it is not a PNG. */
export function pngTextChunks(buffer) {
  const bytes = new Uint8Array(buffer);
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) throw new Error("this file is not a PNG image");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const out = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = latin1.decode(bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "tEXt") {
      const zero = data.indexOf(0);
      if (zero > 0) out[latin1.decode(data.subarray(0, zero))] = utf8.decode(data.subarray(zero + 1));
    } else if (type === "iTXt") {
      const zero = data.indexOf(0);
      const compressed = data[zero + 1];
      let p = zero + 3;
      p = data.indexOf(0, p) + 1;  // language tag
      p = data.indexOf(0, p) + 1;  // translated keyword
      if (zero > 0 && !compressed) out[latin1.decode(data.subarray(0, zero))] = utf8.decode(data.subarray(p));
    } else if (type === "IEND") break;
    pos += 12 + length;
  }
  return out;
}
