/**
 * Builds dist/neuroflow, one self-contained executable. A bare `bun build --compile` bakes this
 * machine's node_modules paths in, so the plugins below inline what libraries would read from disk
 * at run time (etcd3's .proto files).
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BunPlugin } from 'bun';
import protobuf from 'protobufjs';

const root = import.meta.dir;

/** etcd3 loads proto/rpc.proto with proto-loader at import time; hand it the parsed JSON instead. */
const inlineEtcdProto: BunPlugin = {
  name: 'inline-etcd3-proto',
  setup(build) {
    build.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const protoPath = join(dirname(args.path), '..', 'proto', 'rpc.proto');
      // keepCase: etcd3 reads snake_case fields (mod_revision), as proto-loader's loadSync would give it.
      const json = JSON.stringify(new protobuf.Root().loadSync(protoPath, { keepCase: true }).toJSON());
      const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`,/;
      if (!call.test(src)) throw new Error('etcd3 changed how it loads rpc.proto; update build.ts');
      return { contents: src.replace(call, `(0, proto_loader_1.fromJSON)(${json},`), loader: 'js' };
    });
  },
};

export async function build(outfile = join(root, 'dist', 'neuroflow')): Promise<string> {
  mkdirSync(dirname(outfile), { recursive: true });
  const result = await Bun.build({
    entrypoints: [join(root, 'src', 'main.ts')],
    target: 'bun',
    minify: true,
    sourcemap: 'none',
    plugins: [inlineEtcdProto],
    compile: { outfile },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error('build failed');
  }
  return outfile;
}

if (import.meta.main) {
  const out = await build(process.argv[2]);
  console.log(`built ${out} (${(statSync(out).size / 1024 ** 2).toFixed(1)} MiB)`);
}
