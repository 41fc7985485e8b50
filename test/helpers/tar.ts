/** The files of a ustar archive (what the download route sends): name → bytes. */
export function untar(buf: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let at = 0;
  while (at + 512 <= buf.length) {
    const header = buf.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    files.set(name, buf.subarray(at + 512, at + 512 + size));
    at += 512 + size + ((512 - (size % 512)) % 512);
  }
  return files;
}
