/**
 * binary-parser 2.3.0 ships types, but its package.json "exports" hides them from NodeNext resolution
 * (TS7016). This declares the part of its API the differential test uses.
 */
declare module 'binary-parser' {
  interface ParserOptions {
    length?: number | string | ((item: unknown) => number);
    type?: string | Parser;
  }
  export class Parser {
    endianness(e: 'little' | 'big'): this;
    uint8(name: string): this;
    uint16(name: string): this;
    uint32(name: string): this;
    buffer(name: string, options: ParserOptions): this;
    array(name: string, options: ParserOptions): this;
    nest(name: string, options: ParserOptions): this;
    parse(buffer: Buffer | Uint8Array): Record<string, unknown>;
  }
}
