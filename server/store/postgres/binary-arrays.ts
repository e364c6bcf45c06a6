// Array parameters in PostgreSQL's binary array format (array_send/array_recv), so node-postgres
// need not write them as array literals: its literal escapes every element with two regular
// expressions and builds one long concatenated string (report bodies, alert memories and alerts
// are JSON, full of quotes), which PostgreSQL then parses back character by character. On the
// ingest benchmark that escaping alone was 2.5 s of the server's 28.7 busy seconds.
// The element type is the one the statement casts the parameter to (`$2::bigint[]`): array_recv
// refuses any other. An array this cannot encode exactly goes as before (node-postgres' literal).

export type ArrayElement = 'text' | 'int8' | 'int4';

const OIDS: Record<ArrayElement, number> = { text: 25, int8: 20, int4: 23 };
const CASTS: Record<string, ArrayElement> = { text: 'text', bigint: 'int8', int8: 'int8', int: 'int4', integer: 'int4', int4: 'int4' };

/** The parameters a statement casts to an array type this encodes, by index (0 for $1). */
export function arrayParameters(text: string): Map<number, ArrayElement> {
  const out = new Map<number, ArrayElement>();
  for (const m of text.matchAll(/\$(\d+)::(text|bigint|int8|integer|int4|int)\[\]/g)) {
    const i = Number(m[1]) - 1;
    if (!out.has(i)) out.set(i, CASTS[m[2]!]!);
  }
  return out;
}

const HEADER = 12;

/** `values` as a one-dimensional array of `element` in binary format; null when an element does not fit it exactly. */
export function encodeArray(element: ArrayElement, values: readonly unknown[]): Buffer | null {
  const n = values.length;
  // An element's bytes: a string's UTF-8, a number's fixed width; null for SQL NULL.
  const texts: Array<string | null> = element === 'text' ? new Array(n) : [];
  let size = HEADER + (n === 0 ? 0 : 8);
  let nulls = 0;
  const width = element === 'int8' ? 8 : 4;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      nulls = 1;
      if (element === 'text') texts[i] = null;
      size += 4;
      continue;
    }
    if (element === 'text') {
      // What node-postgres' literal would have sent: a string as is, a number or boolean as its toString().
      const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : null;
      if (s === null) return null;
      texts[i] = s;
      size += 4 + Buffer.byteLength(s, 'utf8');
    } else {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || (element === 'int4' && (v < -2147483648 || v > 2147483647))) return null;
      size += 4 + width;
    }
  }
  const buf = Buffer.allocUnsafe(size);
  buf.writeInt32BE(n === 0 ? 0 : 1, 0);
  buf.writeInt32BE(nulls, 4);
  buf.writeInt32BE(OIDS[element], 8);
  let at = HEADER;
  if (n > 0) {
    buf.writeInt32BE(n, at);
    buf.writeInt32BE(1, at + 4);
    at += 8;
  }
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      buf.writeInt32BE(-1, at);
      at += 4;
    } else if (element === 'text') {
      const written = buf.write(texts[i]!, at + 4, 'utf8');
      buf.writeInt32BE(written, at);
      at += 4 + written;
    } else if (element === 'int8') {
      buf.writeInt32BE(8, at);
      buf.writeBigInt64BE(BigInt(v as number), at + 4);
      at += 12;
    } else {
      buf.writeInt32BE(4, at);
      buf.writeInt32BE(v as number, at + 4);
      at += 8;
    }
  }
  return buf;
}
