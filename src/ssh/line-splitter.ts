import { StringDecoder } from 'node:string_decoder';

/** What a line cut at maxLineBytes ends with: how much of it was not kept, and which setting cut it. */
export function lineCutNote(droppedBytes: number): string {
  return ` [... line cut: ${droppedBytes} bytes not kept (RUN_MAX_LINE_BYTES) ...]`;
}

/**
 * UTF-8 decoding that survives characters split across chunks, cut into lines.
 *
 * A line longer than `maxLineBytes` keeps only its first bytes: the rest is counted, never held, so a remote
 * command printing one endless line cannot grow memory. The kept part ends at its last blank (no half of a
 * token is kept: half a secret would not look like one) and then says how many bytes were cut.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private readonly maxLineBytes: number;
  private partial = '';
  private partialBytes = 0;
  private dropped = 0;

  constructor(
    private readonly emit: (line: string, complete: boolean) => void,
    opts: { readonly maxLineBytes?: number } = {},
  ) {
    this.maxLineBytes = opts.maxLineBytes ?? Number.POSITIVE_INFINITY;
  }

  push(chunk: Buffer): void {
    const decoded = this.decoder.write(chunk);
    let start = 0;
    for (let nl = decoded.indexOf('\n'); nl !== -1; nl = decoded.indexOf('\n', start)) {
      this.append(decoded.slice(start, nl));
      this.flush(true);
      start = nl + 1;
    }
    this.append(decoded.slice(start));
  }

  end(): void {
    this.append(this.decoder.end());
    if (this.partial !== '' || this.dropped > 0) this.flush(false);
  }

  private append(piece: string): void {
    if (piece === '') return;
    if (this.dropped > 0) {
      this.dropped += Buffer.byteLength(piece);
      return;
    }
    const bytes = Buffer.byteLength(piece);
    if (this.partialBytes + bytes <= this.maxLineBytes) {
      this.partial += piece;
      this.partialBytes += bytes;
      return;
    }
    const kept = utf8Prefix(piece, this.maxLineBytes - this.partialBytes);
    const keptBytes = Buffer.byteLength(kept);
    this.partial += kept;
    this.partialBytes += keptBytes;
    this.dropped = bytes - keptBytes;
  }

  private flush(complete: boolean): void {
    let line = this.partial;
    let dropped = this.dropped;
    if (dropped > 0) {
      const blank = lastBlank(line);
      if (blank !== -1) {
        dropped += Buffer.byteLength(line.slice(blank + 1));
        line = line.slice(0, blank + 1);
      }
      line = `${line.trimEnd()}${lineCutNote(dropped)}`;
    }
    this.partial = '';
    this.partialBytes = 0;
    this.dropped = 0;
    this.emit(line, complete);
  }
}

/** The longest prefix of `text` that fits `bytes` UTF-8 bytes without splitting a character. */
function utf8Prefix(text: string, bytes: number): string {
  if (bytes <= 0) return '';
  return new StringDecoder('utf8').write(Buffer.from(text, 'utf8').subarray(0, bytes));
}

function lastBlank(text: string): number {
  for (let i = text.length - 1; i >= 0; i--) {
    const c = text[i];
    if (c === ' ' || c === '\t') return i;
  }
  return -1;
}
