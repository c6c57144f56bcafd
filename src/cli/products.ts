/** `kmslab products [--json] [FILTER]`: the product catalog, so names can be given exactly. */
import type { Command } from 'commander';

interface ProductRow {
  name: string;
  skuId: string;
  application: string;
  applicationId: string;
  kmsId: string;
  kmsIdName: string;
  requiredCount: number;
  protocol: number;
  retail: boolean;
  preview: boolean;
  gvlk: string | null;
}

/** Every SKU whose name (or SKU / KMS id) holds every word of the filter, in catalog order. */
async function productRows(filter?: string): Promise<ProductRow[]> {
  const { defaultCatalog, skuChannel } = await import('../catalog/products.js');
  const cat = defaultCatalog();
  const want = (filter ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const rows: ProductRow[] = [];
  for (const s of cat.skus) {
    const k = cat.kmsId(s.kmsId);
    const hay = `${s.name} ${s.id} ${s.kmsId} ${k?.name ?? ''}`.toLowerCase();
    if (!want.every((w) => hay.includes(w))) continue;
    rows.push({
      name: s.name,
      skuId: s.id,
      application: cat.application(s.applicationId)?.name ?? s.applicationId,
      applicationId: s.applicationId,
      kmsId: s.kmsId,
      kmsIdName: k?.name ?? '',
      requiredCount: k?.nPolicy ?? 0,
      protocol: k?.protocolVersion ?? 6,
      retail: skuChannel(s, k) === 'retail',
      preview: skuChannel(s, k) === 'preview',
      gvlk: s.gvlk,
    });
  }
  return rows;
}

function formatProductTable(rows: readonly ProductRow[]): string {
  const head = ['NAME', 'SKU ID', 'APPLICATION', 'KMS ID', 'N', 'V', 'CHANNEL', 'GVLK'];
  const body = rows.map((r) => [
    r.name,
    r.skuId,
    r.application,
    `${r.kmsId} (${r.kmsIdName})`,
    String(r.requiredCount),
    String(r.protocol),
    r.preview ? 'preview' : r.retail ? 'retail' : 'volume',
    r.gvlk ?? '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...body.map(line)].join('\n')}\n${rows.length} product(s)\n`;
}

export function registerProducts(program: Command): void {
  program
    .command('products')
    .description(
      'list the product catalog: the exact names --product takes, SKU and KMS ids, N_Policy, protocol, GVLK',
    )
    .argument('[filter...]', 'only products whose name or ids hold every one of these words')
    .option('--json', 'one JSON array of products')
    .action(async (filter: string[], o: { json?: boolean }) => {
      const rows = await productRows(filter.join(' '));
      process.stdout.write(o.json ? `${JSON.stringify(rows, null, 2)}\n` : formatProductTable(rows));
      if (rows.length === 0) process.exitCode = 1;
    });
}
