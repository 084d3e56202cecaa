/** Test certificates made with openssl. */
import { execFileSync } from "node:child_process";
import { join } from "node:path";

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
export function makePki(base: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (name: string) => join(base, name);
  const run = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=herald-test-ca");
  for (const who of ["server", "client"]) {
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f(`${who}.key`), "-out", f(`${who}.csr`), "-subj", `/CN=herald-test-${who}`);
    const ext = f(`${who}.ext`);
    execFileSync("sh", ["-c", `printf '%s\\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'extendedKeyUsage=${who === "server" ? "serverAuth" : "clientAuth"}' > '${ext}'`]);
    run("x509", "-req", "-in", f(`${who}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(`${who}.pem`), "-days", "2", "-extfile", ext);
  }
  return { ca: f("ca.pem"), serverCert: f("server.pem"), serverKey: f("server.key"), clientCert: f("client.pem"), clientKey: f("client.key") };
}
