/**
 * The four kinds of machine a KMS host counts, each with the fields a request carries, taken from the
 * shipped catalog (products.json) so that they follow it.
 */
import { defaultCatalog } from '../catalog/products.js';
import { resolveProduct } from '../client/client.js';
import type { KmsVersion } from '../kms/messages.js';
import { type PoolName, poolNameOf } from './model.js';

export type ProductClass = 'windows-server' | 'windows-client' | 'office2010' | 'office2013';

/** In shrinking order: a counterexample prefers the first (servers reach their threshold with 5). */
export const PRODUCT_CLASSES: readonly ProductClass[] = [
  'windows-server',
  'windows-client',
  'office2010',
  'office2013',
];

/** The catalog product that stands for each class. */
const CLASS_PRODUCT: Record<ProductClass, string> = {
  'windows-server': 'Windows Server 2022 Standard',
  'windows-client': 'Windows 10/11 Enterprise',
  office2010: 'Office Professional Plus 2010',
  office2013: 'Office LTSC Professional Plus 2021',
};

export interface ProductInfo {
  productClass: ProductClass;
  /** Catalog product name. */
  product: string;
  skuId: string;
  applicationId: string;
  kmsId: string;
  /** N_Policy genuine clients of this class send (25 Windows clients, 5 the others). */
  requiredCount: number;
  protocol: KmsVersion;
  pool: PoolName;
}

let table: Record<ProductClass, ProductInfo> | null = null;

export function productInfo(c: ProductClass): ProductInfo {
  if (table === null) {
    const catalog = defaultCatalog();
    const t = {} as Record<ProductClass, ProductInfo>;
    for (const k of PRODUCT_CLASSES) {
      const p = resolveProduct({ product: CLASS_PRODUCT[k] }, catalog);
      t[k] = {
        productClass: k,
        product: CLASS_PRODUCT[k],
        skuId: p.skuId,
        applicationId: p.applicationId,
        kmsId: p.kmsId,
        requiredCount: p.requiredCount,
        protocol: p.protocol,
        pool: poolNameOf(p.applicationId),
      };
    }
    table = t;
  }
  return table[c];
}
