// AWS event stream binary framing (application/vnd.amazon.eventstream), encode and decode.
//   frame = total_length u32be | headers_length u32be | prelude_crc u32be (crc32 of the 8 bytes
//           before it) | headers | payload | message_crc u32be (crc32 of everything before it)
//   header = name_len u8 | name | value_type u8 | value   (type 7 = string: len u16be | utf-8 bytes)
import zlib from 'node:zlib';

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, the one zlib and the event stream use). */
export function crc32js(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
export const crc32 = typeof zlib.crc32 === 'function' ? (b) => zlib.crc32(b) >>> 0 : crc32js;

/** Encode one frame. headers: { name: string | {type:'bool'|'byte'|'short'|'int'|'long'|'bytes'|'string'|'timestamp'|'uuid', value} } */
export function encodeFrame(headers, payload) {
  const hparts = [];
  for (const [name, v] of Object.entries(headers)) {
    const n = Buffer.from(name, 'utf8');
    const val = typeof v === 'string' ? { type: 'string', value: v } : v;
    let body;
    switch (val.type) {
      case 'bool': body = Buffer.from([val.value ? 0 : 1]); break;
      case 'byte': body = Buffer.from([2, val.value & 0xff]); break;
      case 'short': body = Buffer.alloc(3); body[0] = 3; body.writeInt16BE(val.value, 1); break;
      case 'int': body = Buffer.alloc(5); body[0] = 4; body.writeInt32BE(val.value, 1); break;
      case 'long': case 'timestamp': body = Buffer.alloc(9); body[0] = val.type === 'long' ? 5 : 8; body.writeBigInt64BE(BigInt(val.value), 1); break;
      case 'bytes': case 'string': {
        const b = Buffer.isBuffer(val.value) ? val.value : Buffer.from(String(val.value), 'utf8');
        body = Buffer.alloc(3 + b.length); body[0] = val.type === 'bytes' ? 6 : 7; body.writeUInt16BE(b.length, 1); b.copy(body, 3);
        break;
      }
      case 'uuid': body = Buffer.concat([Buffer.from([9]), Buffer.from(val.value.replace(/-/g, ''), 'hex')]); break;
      default: throw new Error(`bad header type ${val.type}`);
    }
    hparts.push(Buffer.from([n.length]), n, body);
  }
  const h = Buffer.concat(hparts);
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload), 'utf8');
  const total = 12 + h.length + p.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(h.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  h.copy(out, 12);
  p.copy(out, 12 + h.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

function decodeHeaders(buf) {
  const out = {};
  let i = 0;
  while (i < buf.length) {
    const nl = buf[i++];
    const name = buf.subarray(i, i + nl).toString('utf8');
    i += nl;
    const type = buf[i++];
    let value;
    switch (type) {
      case 0: value = true; break;
      case 1: value = false; break;
      case 2: value = buf.readInt8(i); i += 1; break;
      case 3: value = buf.readInt16BE(i); i += 2; break;
      case 4: value = buf.readInt32BE(i); i += 4; break;
      case 5: case 8: value = buf.readBigInt64BE(i); i += 8; break;
      case 6: case 7: {
        const l = buf.readUInt16BE(i);
        i += 2;
        value = type === 7 ? buf.subarray(i, i + l).toString('utf8') : Buffer.from(buf.subarray(i, i + l));
        i += l;
        break;
      }
      case 9: value = buf.subarray(i, i + 16).toString('hex'); i += 16; break;
      default: throw new Error(`eventstream: unknown header type ${type}`);
    }
    out[name] = value;
  }
  return out;
}

/**
 * Decode all complete frames of a buffer, checking both CRCs. Returns { frames: [{headers,
 * payload (Buffer), json (parsed or undefined)}], rest (Buffer of an incomplete tail) }.
 * Throws on a CRC mismatch or an impossible length.
 */
export function decodeFrames(buf) {
  const frames = [];
  let off = 0;
  while (buf.length - off >= 12) {
    const total = buf.readUInt32BE(off);
    const hlen = buf.readUInt32BE(off + 4);
    if (total < 16 || hlen > total - 16) throw new Error(`eventstream: bad lengths total=${total} headers=${hlen}`);
    if (crc32(buf.subarray(off, off + 8)) !== buf.readUInt32BE(off + 8)) throw new Error('eventstream: prelude CRC mismatch');
    if (buf.length - off < total) break;
    if (crc32(buf.subarray(off, off + total - 4)) !== buf.readUInt32BE(off + total - 4)) throw new Error('eventstream: message CRC mismatch');
    const headers = decodeHeaders(buf.subarray(off + 12, off + 12 + hlen));
    const payload = Buffer.from(buf.subarray(off + 12 + hlen, off + total - 4));
    let json;
    try { json = payload.length ? JSON.parse(payload.toString('utf8')) : undefined; } catch { json = undefined; }
    frames.push({ headers, payload, json });
    off += total;
  }
  return { frames, rest: buf.subarray(off) };
}
