// What can be done with a shown image — the lightbox's buttons and the menu on a
// node's image: open it in a new tab, save (download) it, copy it to the clipboard.
import { toast } from "./popups.js";

/** The file name an image was saved under: its data-filename, else the /view URL's. */
export function imageFileName(img) {
  return img.dataset?.filename || new URL(img.src, location.href).searchParams.get("filename") || "image.png";
}

export function openImage(img) { window.open(img.src, "_blank", "noopener"); }

export function saveImage(img) {
  const a = document.createElement("a");
  a.href = img.src;
  a.download = imageFileName(img);
  a.click();
}

export async function copyImage(img) {
  try {
    const blob = await (await fetch(img.src)).blob();
    await navigator.clipboard.write([new ClipboardItem({ [blob.type || "image/png"]: blob })]);
    toast("Image copied");
  } catch (err) { toast(`Could not copy the image: ${err.message}`, "error"); }
}
