import { describe, expect, it, vi } from 'vitest';
import { KmsClient } from '../../src/client/index.js';
import { serveTranscript, startDnsResponder, startHostRuntime, startLabHost } from '../../src/index.js';

/**
 * Everything that holds a socket implements Symbol.asyncDispose, so `await using` closes it at the end
 * of the block, also when the block throws. Each case spies on close() to see that disposal reached it.
 */
describe('Symbol.asyncDispose', () => {
  it('closes a lab host, also when the block throws', async () => {
    let close: ReturnType<typeof vi.fn> | undefined;
    await expect(
      (async () => {
        await using kms = await startLabHost({ seed: 'dispose' });
        close = vi.spyOn(kms, 'close');
        throw new Error('the test failed');
      })(),
    ).rejects.toThrow('the test failed');
    expect(close).toHaveBeenCalledOnce();
  });

  it('closes a host runtime', async () => {
    let close: ReturnType<typeof vi.fn> | undefined;
    {
      await using rt = await startHostRuntime({
        clock: 'manual',
        store: 'memory',
        listen: [{ host: '127.0.0.1', port: 0 }],
      });
      close = vi.spyOn(rt, 'close');
    }
    expect(close).toHaveBeenCalledOnce();
  });

  it('closes a KmsClient connection: the host sees it close', async () => {
    await using kms = await startLabHost({ seed: 'dispose' });
    {
      await using client = new KmsClient({
        host: kms.host,
        port: kms.port,
        product: 'Windows 11 Enterprise',
      });
      await client.connect();
    }
    const closed = await kms.events.first('connection', (e) => e.state === 'close');
    expect(closed.connectionId).toBe(1);
  });

  it('closes a DNS responder', async () => {
    let close: ReturnType<typeof vi.fn> | undefined;
    {
      await using dns = await startDnsResponder({
        listen: { host: '127.0.0.1', port: 0 },
        domain: 'lab.test',
        targets: [{ host: 'kms1.lab.test', port: 1688, addresses: ['127.0.0.1'] }],
      });
      close = vi.spyOn(dns, 'close');
    }
    expect(close).toHaveBeenCalledOnce();
  });

  it('closes a served transcript', async () => {
    let lines: string[];
    {
      await using kms = await startLabHost({ seed: 'dispose', record: true });
      await kms.activate({ product: 'Windows 11 Enterprise' });
      lines = kms.transcript()!;
    }
    let close: ReturnType<typeof vi.fn> | undefined;
    {
      await using served = await serveTranscript(lines.join('\n'));
      close = vi.spyOn(served, 'close');
    }
    expect(close).toHaveBeenCalledOnce();
  });
});
