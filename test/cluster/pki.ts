/**
 * A throwaway public key infrastructure for one local control plane: a CA, the API
 * server's serving certificate, client certificates for named users, and the key pair
 * that signs service-account tokens. ECDSA P-256 throughout: fast to generate.
 */
// @peculiar/x509 resolves its ASN.1 schemas through decorators that need this polyfill.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// Node's WebCrypto is the standard one; only the DOM typings differ.
x509.cryptoProvider.set(webcrypto as never);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const validity = 24 * 60 * 60 * 1000;

/** A certificate and its private key, both PEM-encoded. */
export interface KeyPair {
  certificate: string;
  privateKey: string;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function pem(label: string, format: 'pkcs8' | 'spki', key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey(format, key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

/** Escapes a value for an X.500 distinguished name. */
function dn(value: string): string {
  return value.replace(/[,+"\\<>;=]/g, (c) => `\\${c}`);
}

/** A certificate authority that issues the control plane's certificates. */
export class CertificateAuthority {
  private constructor(
    readonly certificate: string,
    readonly cert: x509.X509Certificate,
    readonly keys: CryptoKeyPair,
  ) {}

  static async create(commonName: string): Promise<CertificateAuthority> {
    const keys = await generateKeys();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${dn(commonName)}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + validity),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new CertificateAuthority(cert.toString('pem'), cert, keys);
  }

  async #issue(subject: string, usage: string, altNames: x509.JsonGeneralName[]): Promise<KeyPair> {
    const keys = await generateKeys();
    const now = Date.now();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([usage]),
      await x509.AuthorityKeyIdentifierExtension.create(this.cert),
    ];
    if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: this.cert.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + validity),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: algorithm,
      extensions,
    });
    return { certificate: cert.toString('pem'), privateKey: await pem('PRIVATE KEY', 'pkcs8', keys.privateKey) };
  }

  /** A TLS server certificate for the given host names and IP addresses. */
  serving(commonName: string, hosts: { dns?: string[]; ips?: string[] }): Promise<KeyPair> {
    const altNames: x509.JsonGeneralName[] = [
      ...(hosts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(hosts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    return this.#issue(`CN=${dn(commonName)}`, x509.ExtendedKeyUsage.serverAuth, altNames);
  }

  /** A client certificate: Kubernetes reads the user from CN and the groups from O. */
  client(user: string, groups: string[] = []): Promise<KeyPair> {
    const subject = [`CN=${dn(user)}`, ...groups.map((g) => `O=${dn(g)}`)].join(', ');
    return this.#issue(subject, x509.ExtendedKeyUsage.clientAuth, []);
  }
}

/** The key pair that signs and verifies service-account tokens. */
export async function serviceAccountKeys(): Promise<{ privateKey: string; publicKey: string }> {
  const keys = await generateKeys();
  return {
    privateKey: await pem('PRIVATE KEY', 'pkcs8', keys.privateKey),
    publicKey: await pem('PUBLIC KEY', 'spki', keys.publicKey),
  };
}
