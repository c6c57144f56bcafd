import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultCatalog, skuChannel } from '../../../src/catalog/products.js';

const cat = defaultCatalog();
const channel = (name: string) => {
  const s = cat.findSku(name);
  return skuChannel(s, cat.kmsId(s.kmsId));
};

describe('product names: exact, then unique prefix, then words; never a preview or retail SKU by accident', () => {
  it('exact names (and the 10 / 11 spellings of "10/11") resolve to themselves', () => {
    for (const s of cat.skus) expect(cat.findSku(s.name).id).toBe(s.id);
    expect(cat.findSku('Windows 10 Enterprise').name).toBe('Windows 10/11 Enterprise');
    expect(cat.findSku('windows 11   enterprise').name).toBe('Windows 10/11 Enterprise');
  });

  it('a volume name never lands on the preview that starts with it', () => {
    expect(cat.findSku('Office Professional Plus 2021').name).toBe('Office LTSC Professional Plus 2021');
    expect(cat.findSku('Office Professional Plus 2021 Preview').name).toBe(
      'Office Professional Plus 2021 Preview',
    );
  });

  it('an ambiguous name is an error listing candidates; an unknown one points at kmslab products', () => {
    expect(() => cat.findSku('Windows 10')).toThrow(
      /"Windows 10" is ambiguous; give the exact name of one of: /,
    );
    expect(() => cat.findSku('Zune Ultimate')).toThrow(/no product named "Zune Ultimate" \(kmslab products/);
  });

  it('property: any name that is not exact resolves to a volume SKU or fails, never to a preview or retail one', () => {
    const words = [...new Set(cat.skus.flatMap((s) => s.name.split(/\s+/)))];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...words), { minLength: 1, maxLength: 5 }), (ws) => {
        const name = ws.join(' ');
        if (cat.skus.some((s) => s.name.toLowerCase() === name.toLowerCase())) return;
        let ch: ReturnType<typeof channel> | 'error';
        try {
          ch = channel(name);
        } catch {
          ch = 'error';
        }
        expect(ch === null || ch === 'error').toBe(true);
      }),
    );
  });
});
