import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Comments cite docs/protocol.md as "spec a.4", "spec c.2–c.6", "spec e.1 step 3", "spec b", "spec
 * glossary", "Appendix A" (the rules are at the top of docs/protocol.md). Every such citation in the
 * repository must land on a heading there, and no two headings may share a GitHub anchor.
 */

const DOC = 'docs/protocol.md';
const SCANNED = ['src', 'test', 'docs', 'bench', 'fixtures', 'README.md'];
const EXTENSIONS = /\.(ts|md|yaml|yml)$/;

interface Heading {
  level: number;
  text: string;
  anchor: string;
  line: number;
  body: string;
}

/** GitHub's heading anchor: lower case, punctuation except `-` and `_` dropped, spaces → `-`. */
function githubAnchor(text: string): string {
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function parseHeadings(md: string): Heading[] {
  const lines = md.split('\n');
  const found: Omit<Heading, 'body'>[] = [];
  let fenced = false;
  lines.forEach((l, i) => {
    if (/^```/.test(l)) fenced = !fenced;
    const m = !fenced && /^(#{1,6})\s+(.+?)\s*$/.exec(l);
    if (m) found.push({ level: m[1]!.length, text: m[2]!, anchor: githubAnchor(m[2]!), line: i + 1 });
  });
  return found.map((h, k) => {
    const next = found.slice(k + 1).find((n) => n.level <= h.level);
    return { ...h, body: lines.slice(h.line, next ? next.line - 1 : lines.length).join('\n') };
  });
}

// One reference: a section (a.4, optionally "step 3" / "rules 1-5"), a part letter, the glossary or
// Appendix A. A citation is "spec" (or "spec section") followed by a list or range of references; the
// separator after "spec" may cross a comment line break (" *", "//", "#").
const SECTION = String.raw`[a-z]\.\d+(?:\s+(?:steps?|rules?)\s+\d+(?:\s*[-–]\s*\d+)?)?`;
const REF = String.raw`(?:${SECTION}|appendix\s+a\b|glossary\b|[a-g](?![\w.'’-]))`;
const CITATION = new RegExp(
  String.raw`\bspec(?:\s+section)?[\s*/#]+§?(${REF}(?:\s*(?:,|/|-|–|\band\b|\bor\b)\s*${REF})*)`,
  'gi',
);
const ONE_REF = new RegExp(REF, 'gi');

interface Citation {
  file: string;
  line: number;
  ref: string;
}

function findCitations(file: string, text: string): Citation[] {
  const out: Citation[] = [];
  for (const m of text.matchAll(CITATION)) {
    const line = text.slice(0, m.index).split('\n').length;
    for (const r of m[1]!.matchAll(ONE_REF)) out.push({ file, line, ref: r[0].replace(/\s+/g, ' ') });
  }
  return out;
}

function listFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((n) => n !== 'node_modules' && !n.startsWith('.'))
    .flatMap((n) => listFiles(join(path, n)))
    .filter((f) => EXTENSIONS.test(f));
}

const headings = parseHeadings(readFileSync(DOC, 'utf8'));
const sections = new Map<string, Heading>();
for (const h of headings) {
  const m = /^([a-g]\.\d+)\s/.exec(h.text);
  if (m && h.level === 3) sections.set(m[1]!, h);
  const part = /^([a-g])\s/.exec(h.text);
  if (part && h.level === 2) sections.set(part[1]!, h);
  if (/^appendix a\b/i.test(h.text)) sections.set('appendix a', h);
  if (/^g glossary\b/i.test(h.text)) sections.set('glossary', h);
}

/** Why `ref` does not resolve, or null when it does. */
function unresolved(ref: string): string | null {
  const m = /^([a-z]\.\d+)(?:\s+(?:steps?|rules?)\s+(\d+)(?:\s*[-–]\s*(\d+))?)?$/i.exec(ref);
  const key = (m ? m[1]! : ref).toLowerCase();
  const h = sections.get(key);
  if (!h) return `no heading for "${key}"`;
  if (m?.[2]) {
    const from = Number(m[2]);
    const to = Number(m[3] ?? m[2]);
    for (let n = from; n <= to; n++) {
      if (!new RegExp(String.raw`^\s*${n}\.\s`, 'm').test(h.body)) return `"${h.text}" has no item ${n}.`;
    }
  }
  return null;
}

const citations = SCANNED.flatMap(listFiles).flatMap((f) => findCitations(f, readFileSync(f, 'utf8')));

describe('docs/protocol.md citations', () => {
  it('finds the citations the code makes (the scan is not vacuous)', () => {
    const inSrc = citations.filter((c) => c.file.startsWith('src/'));
    expect(inSrc.length).toBeGreaterThan(150);
    expect(citations).toContainEqual({ file: 'src/rpc/negotiate.ts', line: 2, ref: 'a.4' });
    expect(findCitations('x', '/** one (spec\n * f.5, f.8), two (spec a.2-a.9), spec e.1 step 3 */')).toEqual(
      [
        { file: 'x', line: 1, ref: 'f.5' },
        { file: 'x', line: 1, ref: 'f.8' },
        { file: 'x', line: 2, ref: 'a.2' },
        { file: 'x', line: 2, ref: 'a.9' },
        { file: 'x', line: 2, ref: 'e.1 step 3' },
      ],
    );
    expect(
      findCitations('x', 'spec b, c; spec glossary; (spec a.1, Appendix A); spec author; spec captures'),
    ).toEqual([
      { file: 'x', line: 1, ref: 'b' },
      { file: 'x', line: 1, ref: 'c' },
      { file: 'x', line: 1, ref: 'glossary' },
      { file: 'x', line: 1, ref: 'a.1' },
      { file: 'x', line: 1, ref: 'Appendix A' },
    ]);
  });

  it('resolves every `spec x.y` citation in src/, test/, docs/, bench/ and fixtures/ to a heading', () => {
    const bad = citations
      .map((c) => ({ c, why: unresolved(c.ref) }))
      .filter((x) => x.why !== null)
      .map((x) => `${x.c.file}:${x.c.line}: spec ${x.c.ref}: ${x.why}`);
    expect(bad).toEqual([]);
  });

  it('gives every heading a unique anchor', () => {
    const seen = new Map<string, number>();
    const dupes: string[] = [];
    for (const h of headings) {
      const first = seen.get(h.anchor);
      if (first !== undefined) dupes.push(`${DOC}:${h.line} #${h.anchor} (also line ${first})`);
      else seen.set(h.anchor, h.line);
    }
    expect(dupes).toEqual([]);
  });

  it('computes anchors as GitHub does, as the document says', () => {
    expect(githubAnchor('a.4 Presentation-context negotiation')).toBe('a4-presentation-context-negotiation');
    expect(sections.get('a.4')?.anchor).toBe(
      'a4-presentation-context-negotiation-bind_ack-and-alter_context_resp',
    );
    // Every in-document link points at a heading.
    const doc = readFileSync(DOC, 'utf8');
    const anchors = new Set(headings.map((h) => h.anchor));
    const broken = [...doc.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!).filter((a) => !anchors.has(a));
    expect(broken).toEqual([]);
  });

  it('shows example bytes exactly as the vectors file has them', () => {
    const vectors = JSON.parse(readFileSync('fixtures/vectors/kms-test-vectors.json', 'utf8'));
    const doc = readFileSync(DOC, 'utf8');
    const blocks = [...doc.matchAll(/<!-- vector: (\S+) -->\n```text\n([\s\S]*?)\n```/g)];
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    for (const [, path, dump] of blocks) {
      const bytes = dump!
        .split('\n')
        .map((l) => l.replace(/#.*$/, '').replace(/^[0-9a-f]{4}\s/, ''))
        .join('')
        .replace(/\s+/g, '');
      const expected = path!.split('.').reduce((o, k) => o?.[k], vectors);
      expect(typeof expected, path).toBe('string');
      expect(bytes, path).toBe(expected);
    }
  });
});
