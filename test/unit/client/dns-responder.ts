/**
 * A DNS responder on 127.0.0.1 (UDP and TCP on the same port) serving SRV and A records from a
 * small zone, for discovery tests. Built with dns-packet.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

export interface Zone {
  srv?: Record<string, dnsPacket.SrvData[]>;
  a?: Record<string, string[]>;
  /** Put A records of SRV targets in the additional section. */
  glue?: boolean;
  /** Answer SRV queries over UDP with TC set and no records (forces the TCP retry). */
  truncateUdp?: boolean;
}

export interface DnsResponder {
  port: number;
  server: string;
  queries: { name: string; type: string; via: 'udp' | 'tcp' }[];
  close(): Promise<void>;
}

const NXDOMAIN = 3;

function answer(zone: Zone, msg: Buffer, via: 'udp' | 'tcp', log: DnsResponder['queries']): Buffer | null {
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return null;
  }
  const question = q.questions?.[0];
  if (!question) return null;
  log.push({ name: question.name, type: question.type, via });
  const name = question.name.toLowerCase();
  const answers: dnsPacket.Answer[] = [];
  const additionals: dnsPacket.Answer[] = [];
  let known = false;
  if (question.type === 'SRV' && zone.srv?.[name]) {
    known = true;
    if (!(via === 'udp' && zone.truncateUdp)) {
      for (const data of zone.srv[name]) {
        answers.push({ type: 'SRV', name: question.name, ttl: 60, data });
        if (zone.glue) {
          for (const ip of zone.a?.[data.target] ?? [])
            additionals.push({ type: 'A', name: data.target, ttl: 60, data: ip });
        }
      }
    }
  }
  if (question.type === 'A' && zone.a?.[name]) {
    known = true;
    for (const ip of zone.a[name]) answers.push({ type: 'A', name: question.name, ttl: 60, data: ip });
  }
  if (question.type === 'AAAA' && zone.a?.[name]) known = true; // name exists, no AAAA
  let flags = dnsPacket.AUTHORITATIVE_ANSWER | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
  if (via === 'udp' && zone.truncateUdp && question.type === 'SRV') flags |= dnsPacket.TRUNCATED_RESPONSE;
  if (!known) flags |= NXDOMAIN;
  return dnsPacket.encode({
    type: 'response',
    id: q.id ?? 0,
    flags,
    questions: [question],
    answers,
    additionals,
  });
}

async function bindPair(): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) return { udp, tcp, port };
    udp.close();
  }
  throw new Error('no free UDP+TCP port pair');
}

export async function startDns(zone: Zone): Promise<DnsResponder> {
  const { udp, tcp, port } = await bindPair();
  const queries: DnsResponder['queries'] = [];
  udp.on('message', (msg, rinfo) => {
    const out = answer(zone, msg, 'udp', queries);
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  const sockets = new Set<Socket>();
  tcp.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const n = buf.readUInt16BE(0);
        const out = answer(zone, buf.subarray(2, 2 + n), 'tcp', queries);
        buf = buf.subarray(2 + n);
        if (out) {
          const framed = Buffer.alloc(2 + out.length);
          framed.writeUInt16BE(out.length, 0);
          out.copy(framed, 2);
          sock.write(framed);
        }
      }
    });
  });
  return {
    port,
    server: `127.0.0.1:${port}`,
    queries,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        udp.close();
        tcp.close(() => resolve());
      }),
  };
}
