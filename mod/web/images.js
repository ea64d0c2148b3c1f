// Pictures in messages: what kind a file is, and its size read from its first bytes, so the
// page keeps room for it before it is decoded (and a conversation at its end stays there).

const SIGNATURES = [["iVBORw0KGgo", "image/png"], ["/9j/", "image/jpeg"], ["R0lGOD", "image/gif"],
  ["UklGR", "image/webp"], ["Qk", "image/bmp"]];
const HEAD = 65536;  // bytes read for a size: a JPEG's frame header may follow its EXIF data
const JPEG_FRAMES = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd,
  0xce, 0xcf]);

export function imageType(base64) {
  if (!/^[A-Za-z0-9+/]+=*$/.test(base64)) return null;
  const found = SIGNATURES.find(([head]) => base64.startsWith(head));
  return found ? found[1] : null;
}

function head(base64) {
  const prefix = base64.slice(0, Math.ceil(HEAD / 3) * 4);
  return Uint8Array.from(atob(prefix), (c) => c.charCodeAt(0));
}

function jpegSize(b) {
  let i = 2;
  while (i + 9 < b.length && b[i] === 0xff) {
    const marker = b[i + 1];
    if (JPEG_FRAMES.has(marker)) return [(b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]];
    i += 2 + ((b[i + 2] << 8) | b[i + 3]);
  }
  return null;
}

function webpSize(b, view) {
  const chunk = String.fromCharCode(...b.slice(12, 16));
  if (chunk === "VP8 ") return [view.getUint16(26, true) & 0x3fff, view.getUint16(28, true) & 0x3fff];
  if (chunk === "VP8L") {
    const bits = view.getUint32(21, true);
    return [(bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1];
  }
  if (chunk === "VP8X") {
    return [(view.getUint32(24, true) & 0xffffff) + 1, (view.getUint32(27, true) & 0xffffff) + 1];
  }
  return null;
}

// [width, height] in pixels, or null when the header does not say.
export function imageSize(base64, type) {
  let b;
  try {
    b = head(base64);
  } catch {
    return null;
  }
  if (b.length < 30) return null;
  const view = new DataView(b.buffer);
  let size = null;
  if (type === "image/png") size = [view.getUint32(16), view.getUint32(20)];
  else if (type === "image/gif") size = [view.getUint16(6, true), view.getUint16(8, true)];
  else if (type === "image/bmp") size = [view.getInt32(18, true), Math.abs(view.getInt32(22, true))];
  else if (type === "image/webp") size = webpSize(b, view);
  else if (type === "image/jpeg") size = jpegSize(b);
  return size && size[0] > 0 && size[1] > 0 ? size : null;
}

// The size a picture is shown at: within side x side, never larger than it is.
export function shownSize([width, height], side = 320) {
  const scale = Math.min(1, side / width, side / height);
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}
