import { StringDecoder } from 'node:string_decoder';

/** UTF-8 decoding that survives characters split across chunks, cut into lines. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly emit: (line: string, complete: boolean) => void) {}

  push(chunk: Buffer): void {
    const decoded = this.decoder.write(chunk);
    let start = 0;
    let nl = decoded.indexOf('\n');
    if (nl === -1) {
      this.partial += decoded;
      return;
    }
    let head = this.partial;
    this.partial = '';
    while (nl !== -1) {
      this.emit(head + decoded.slice(start, nl), true);
      head = '';
      start = nl + 1;
      nl = decoded.indexOf('\n', start);
    }
    this.partial = decoded.slice(start);
  }

  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '') this.emit(rest, false);
  }
}
