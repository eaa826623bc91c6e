/**
 * Builds dist/neuroflow, one self-contained executable. A bare `bun build --compile` bakes this
 * machine's node_modules paths in, so the plugins below inline what libraries would read from disk
 * at run time (etcd3's .proto files), and the web UI (bundled first into dist/ui/) is embedded as the
 * virtual module `nf:ui-assets`.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { BunPlugin } from 'bun';
import protobuf from 'protobufjs';
import { CONTENT_TYPES } from './src/api/ui';

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

/**
 * blessed (the console TUI) requires its widgets by computed name (lib/widget.js) and reads its terminfo,
 * termcap and fonts from `blessed/usr` beside its own files (lib/tput.js, widgets/bigtext.js): neither
 * survives `--compile`. Make the widget requires static, and give tput.js and bigtext.js an `fs` that
 * serves `usr/` from the binary under the made-up prefix /$blessed-usr/ (real files pass through, so the
 * system's terminfo is still read first, as blessed does).
 */
const BLESSED_USR = '/$blessed-usr/';
const blessedDir = () => dirname(Bun.resolveSync('blessed/package.json', root));
const bundleBlessed: BunPlugin = {
  name: 'bundle-blessed',
  setup(build) {
    build.onLoad({ filter: /[\\/]blessed[\\/]lib[\\/]widget\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const list = /widget\.classes = \[([^\]]*)\];/.exec(src);
      const loop =
        /widget\.classes\.forEach\(function\(name\) \{\s*var file = name\.toLowerCase\(\);\s*widget\[name\] = widget\[file\] = require\('\.\/widgets\/' \+ file\);\s*\}\);/;
      if (!list || !loop.test(src)) throw new Error('blessed changed lib/widget.js; update build.ts');
      const names = [...list[1]!.matchAll(/'(\w+)'/g)].map((m) => m[1]!);
      const requires = names
        .map((n) => `widget.${n} = widget.${n.toLowerCase()} = require('./widgets/${n.toLowerCase()}');`)
        .join('\n');
      return { contents: src.replace(loop, requires), loader: 'js' };
    });
    build.onLoad({ filter: /[\\/]blessed[\\/]lib[\\/](tput|widgets[\\/]bigtext)\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const usr = /__dirname \+ '\/(?:\.\.\/)+usr\//g;
      const fs = /\bfs = require\('fs'\)/;
      if (!usr.test(src) || !fs.test(src)) throw new Error(`blessed changed ${args.path}; update build.ts`);
      return {
        contents: src.replace(usr, `'${BLESSED_USR}`).replace(fs, "fs = require('nf:blessed-fs')"),
        loader: 'js',
      };
    });
    build.onResolve({ filter: /^nf:blessed-fs$/ }, () => ({
      path: 'nf:blessed-fs',
      namespace: 'nf-blessed',
    }));
    build.onLoad({ filter: /.*/, namespace: 'nf-blessed' }, () => {
      const usr = join(blessedDir(), 'usr');
      const files: Record<string, string> = {};
      for (const f of listFiles(usr))
        files[relative(usr, f).split('\\').join('/')] = readFileSync(f).toString('base64');
      if (!files.linux || !files.xterm) throw new Error(`blessed/usr has no linux or xterm terminfo: ${usr}`);
      return { contents: blessedFsModule(files), loader: 'js' };
    });
  },
};

/** An `fs` for blessed: paths under BLESSED_USR come from `files` (base64), others from the real fs. */
function blessedFsModule(files: Record<string, string>): string {
  return `
const realFs = require('fs');
const PREFIX = ${JSON.stringify(BLESSED_USR)};
const files = ${JSON.stringify(files)};
const dirs = new Set(['']);
for (const f of Object.keys(files)) {
  const parts = f.split('/');
  for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
}
function rel(p) {
  const s = String(p);
  if (!s.startsWith(PREFIX) && s + '/' !== PREFIX) return undefined;
  const out = [];
  for (const part of s.slice(PREFIX.length).split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop(); else out.push(part);
  }
  return out.join('/');
}
function enoent(p, call) {
  const e = new Error("ENOENT: no such file or directory, " + call + " '" + p + "'");
  e.code = 'ENOENT';
  return e;
}
function stat(p, call) {
  const r = rel(p);
  if (r === undefined) return realFs[call](p);
  const isDir = dirs.has(r);
  if (!isDir && !(r in files)) throw enoent(p, call);
  const size = isDir ? 0 : Buffer.from(files[r], 'base64').length;
  return { size, mode: isDir ? 0o40555 : 0o100444, isFile: () => !isDir, isDirectory: () => isDir,
    isSymbolicLink: () => false, mtime: new Date(0) };
}
module.exports = Object.assign({}, realFs, {
  readFileSync(p, opts) {
    const r = rel(p);
    if (r === undefined) return realFs.readFileSync(p, opts);
    if (!(r in files)) throw enoent(p, 'open');
    const b = Buffer.from(files[r], 'base64');
    const enc = typeof opts === 'string' ? opts : opts && opts.encoding;
    return enc ? b.toString(enc) : b;
  },
  statSync: (p) => stat(p, 'statSync'),
  lstatSync: (p) => stat(p, 'lstatSync'),
  existsSync(p) {
    const r = rel(p);
    return r === undefined ? realFs.existsSync(p) : dirs.has(r) || r in files;
  },
  readdirSync(p, opts) {
    const r = rel(p);
    if (r === undefined) return realFs.readdirSync(p, opts);
    if (!dirs.has(r)) throw enoent(p, 'scandir');
    const base = r === '' ? '' : r + '/';
    const names = new Set();
    for (const k of [...Object.keys(files), ...dirs])
      if (k.startsWith(base) && k !== r && k.length > base.length) names.add(k.slice(base.length).split('/')[0]);
    return [...names].sort();
  },
});
`;
}

const uiDir = join(root, 'dist', 'ui');

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** Bundles ui/src/main.tsx (Preact, noVNC as a lazy chunk) into dist/ui/. Returns the gzipped size. */
export async function buildUi(outdir = uiDir): Promise<{ files: number; bytes: number; gzipBytes: number }> {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const result = await Bun.build({
    entrypoints: [join(root, 'ui', 'src', 'main.tsx')],
    outdir,
    target: 'browser',
    // noVNC 1.7 is ESM with top-level await: only ESM output (loaded as <script type="module">) works.
    format: 'esm',
    splitting: true,
    minify: true,
    sourcemap: 'none',
    naming: { entry: 'app.[ext]', chunk: 'chunk-[hash].[ext]', asset: 'asset-[hash].[ext]' },
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error('UI build failed');
  }
  copyFileSync(join(root, 'ui', 'index.html'), join(outdir, 'index.html'));
  const files = listFiles(outdir);
  let bytes = 0;
  let gzipBytes = 0;
  for (const f of files) {
    const b = readFileSync(f);
    bytes += b.length;
    gzipBytes += gzipSync(b, { level: 9 }).length;
  }
  return { files: files.length, bytes, gzipBytes };
}

/** `import('nf:ui-assets')` in src/api/ui.ts becomes { '/index.html': { type, base64 }, ... } from dist/ui/. */
const embedUi: BunPlugin = {
  name: 'embed-ui-assets',
  setup(build) {
    build.onResolve({ filter: /^nf:ui-assets$/ }, () => ({ path: 'nf:ui-assets', namespace: 'nf-ui' }));
    build.onLoad({ filter: /.*/, namespace: 'nf-ui' }, () => {
      const assets: Record<string, { type: string; base64: string }> = {};
      for (const f of listFiles(uiDir)) {
        const rel = `/${relative(uiDir, f).split('\\').join('/')}`;
        assets[rel] = {
          type: CONTENT_TYPES[extname(f)] ?? 'application/octet-stream',
          base64: readFileSync(f).toString('base64'),
        };
      }
      if (!assets['/index.html']) throw new Error('dist/ui/index.html missing: buildUi() first');
      return { contents: `export default ${JSON.stringify(assets)};`, loader: 'js' };
    });
  },
};

export async function build(outfile = join(root, 'dist', 'neuroflow')): Promise<string> {
  // The gRPC contract's TypeScript is generated from src/cluster/proto (not committed).
  const gen = Bun.spawnSync([join(root, 'scripts', 'gen-proto.sh')], {
    cwd: root,
    stdout: 'inherit',
    stderr: 'inherit',
  });
  if (gen.exitCode !== 0) throw new Error('scripts/gen-proto.sh failed');
  mkdirSync(dirname(outfile), { recursive: true });
  const ui = await buildUi();
  console.log(
    `built dist/ui (${ui.files} files, ${(ui.bytes / 1024).toFixed(0)} KiB, ${(ui.gzipBytes / 1024).toFixed(0)} KiB gzipped)`,
  );
  const result = await Bun.build({
    entrypoints: [join(root, 'src', 'main.ts')],
    target: 'bun',
    minify: true,
    sourcemap: 'none',
    plugins: [inlineEtcdProto, embedUi, bundleBlessed],
    // Optional packages of blessed's Terminal widget, required only when one is made (the console does not).
    external: ['term.js', 'pty.js'],
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
