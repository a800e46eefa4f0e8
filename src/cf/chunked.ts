/**
 * Incremental decoder of an HTTP/1.1 chunked body (RFC 9112 §7.1), tolerant of the framing BBS
 * writes for its event streams: every chunk-size line ends with an empty chunk extension
 * (`4c;\r\n`), which Node's llhttp and undici reject. Extensions (`;` up to the line end) are
 * dropped whatever they hold; trailer fields after the last chunk (`0\r\n`) are read and discarded.
 *
 * Input may be split anywhere (inside a size line, inside CRLF, inside data). Data is returned as
 * views into the pushed buffers, without copying.
 */
import { ChunkedEncodingError } from './errors.js';

const CR = 0x0d;
const LF = 0x0a;
/** Longest size line (hex digits + extension) or trailer line we accept. */
const MAX_LINE = 4096;
/** Largest single chunk we accept (BBS chunks are one SSE event each). */
export const MAX_CHUNK_SIZE = 256 * 1024 * 1024;

type State = 'size' | 'data' | 'data-crlf' | 'trailer' | 'done';

export class ChunkedDecoder {
  private state: State = 'size';
  private line: number[] = [];
  private remaining = 0;
  /** Bytes of the CRLF after a chunk's data already seen (0, or 1 after a CR). */
  private crlfSeen = 0;
  private chunks = 0;
  private bytes = 0;

  /** True once the last chunk and the trailer section were read. */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Number of data chunks decoded so far (not counting the last, empty one). */
  get chunkCount(): number {
    return this.chunks;
  }

  /** Total data bytes decoded so far. */
  get byteCount(): number {
    return this.bytes;
  }

  /**
   * Feed the next bytes of the body. Returns the data they complete (possibly nothing). Bytes after
   * the end of the body are ignored. Throws ChunkedEncodingError on malformed framing.
   */
  push(input: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    const n = input.length;
    while (i < n && this.state !== 'done') {
      switch (this.state) {
        case 'size': {
          i = this.readLine(input, i);
          if (this.lineComplete) {
            this.lineComplete = false;
            const size = parseSizeLine(this.takeLine(), this.chunks);
            if (size === 0) {
              this.state = 'trailer';
            } else {
              this.remaining = size;
              this.state = 'data';
            }
          }
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, n - i);
          out.push(input.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          this.bytes += take;
          if (this.remaining === 0) {
            this.state = 'data-crlf';
            this.crlfSeen = 0;
          }
          break;
        }
        case 'data-crlf': {
          const b = input[i]!;
          if (this.crlfSeen === 0 && b === CR) {
            this.crlfSeen = 1;
            i += 1;
          } else if (b === LF) {
            i += 1;
            this.chunks += 1;
            this.state = 'size';
          } else {
            throw new ChunkedEncodingError('chunk data is not followed by CRLF', {
              chunk: this.chunks,
              byte: b,
            });
          }
          break;
        }
        case 'trailer': {
          i = this.readLine(input, i);
          if (this.lineComplete) {
            this.lineComplete = false;
            const field = this.takeLine();
            if (field.length === 0) this.state = 'done';
            else if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(field)) {
              throw new ChunkedEncodingError('malformed trailer field', { field: field.slice(0, 80) });
            }
          }
          break;
        }
      }
    }
    return out;
  }

  private lineComplete = false;

  /** Accumulate a line up to LF (a preceding CR is dropped). Returns the new input position. */
  private readLine(input: Uint8Array, start: number): number {
    let i = start;
    while (i < input.length) {
      const b = input[i]!;
      i += 1;
      if (b === LF) {
        if (this.line.length > 0 && this.line[this.line.length - 1] === CR) this.line.pop();
        this.lineComplete = true;
        return i;
      }
      this.line.push(b);
      if (this.line.length > MAX_LINE) {
        throw new ChunkedEncodingError(`line longer than ${MAX_LINE} bytes`, { state: this.state });
      }
    }
    return i;
  }

  private takeLine(): string {
    const s = String.fromCharCode(...this.line);
    this.line = [];
    return s;
  }
}

/** Parse `<hex>[ws][;ext...]` → size. The extension (anything after `;`, even nothing) is dropped. */
export function parseSizeLine(line: string, chunkIndex = 0): number {
  const semi = line.indexOf(';');
  const hex = (semi >= 0 ? line.slice(0, semi) : line).replace(/[ \t]+$/, '');
  if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) {
    throw new ChunkedEncodingError('chunk size is not a hexadecimal number', {
      line: line.slice(0, 80),
      chunk: chunkIndex,
    });
  }
  const size = Number.parseInt(hex, 16);
  if (size > MAX_CHUNK_SIZE) {
    throw new ChunkedEncodingError(`chunk of ${size} bytes exceeds ${MAX_CHUNK_SIZE}`, { chunk: chunkIndex });
  }
  return size;
}
