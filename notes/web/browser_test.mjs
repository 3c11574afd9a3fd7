// browser_test.mjs — the page of notes/web in a real browser: headless Chromium, driven over its
// DevTools protocol with node's built-ins only (http, child_process, WebSocket). test.sh runs it.
//
//   node browser_test.mjs --site DIR --native WEB_NATIVE [--screenshot OUT.png] [--chromium PATH]
//
// It serves DIR on 127.0.0.1, opens index.html?sample&... (the page's test hook: DDIM with 20 steps
// for one class), and checks, printing one "PASS  ..." or "FAIL  ..." line per check:
//   - the page denoises live (frames arrive one by one) and stays responsive while it samples;
//   - the samples equal web-native's for the same seed (the same C, built by cc) up to float rounding;
//   - the canvas holds images: neither blank nor noise (pixel spread, neighbouring-pixel correlation);
//   - the forward tab prints sqrt(alpha_bar_t) as the float64 reference table has it;
//   - malformed checkpoints give diffusion.c's one-line message on the page, and sampling still works;
//   - the speed of the forward pass, WebAssembly against native.
// Exit status 1 on any FAIL.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

if (typeof WebSocket === 'undefined') {  // node 20: WebSocket is behind a flag; run again with it
  const r = spawn(process.execPath, ['--experimental-websocket', ...process.argv.slice(1)], { stdio: 'inherit' });
  r.on('exit', (code) => process.exit(code ?? 1));
} else {
  main().then((ok) => process.exit(ok ? 0 : 1), (err) => {
    console.log(`FAIL  browser test: ${err.stack || err}`);
    process.exit(1);
  });
}

function option(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The folder, on 127.0.0.1 at a free port: GET of its files, nothing else.
function serve(dir) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    const file = join(dir, path);
    if (path.includes('..') || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': types[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Chromium headless with DevTools on a free port; resolves with the process and the port.
function launch(chromium, profile) {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-extensions', '--mute-audio', `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0', '--window-size=1000,1000', 'about:blank'];
  const proc = spawn(chromium, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error('Chromium did not start in 60 s: ' + err.slice(-500))), 60000);
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: +m[1] });
      }
    });
    proc.on('exit', (code) => reject(new Error(`Chromium exited (${code}): ${err.slice(-500)}`)));
  });
}

// A DevTools session on the page target: send(method, params) -> result.
async function connect(port) {
  let target;
  for (let k = 0; k < 50 && !target; k++) {
    const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    target = list.find((t) => t.type === 'page');
    if (!target) await sleep(100);
  }
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  let id = 0;
  const waiting = new Map();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.id && waiting.has(m.id)) {
      const { resolve, reject } = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error) reject(new Error(m.error.message));
      else resolve(m.result);
    }
  };
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    waiting.set(++id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params }));
  });
  // evaluate(expression): its value (awaiting promises), or the page's exception as an error
  const evaluate = async (expression) => {
    const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
  };
  return { send, evaluate, close: () => ws.close() };
}

let passed = 0, failed = 0;
function check(ok, text, detail) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  web: ${text}${!ok && detail ? `\n      ${detail}` : ''}`);
  return ok;
}
// waits until the page's expression is truthy; returns its value and the slowest answer (ms)
async function until(page, expression, seconds, onPoll) {
  const t0 = Date.now();
  let slowest = 0;
  for (;;) {
    const t = Date.now();
    const v = await page.evaluate(expression);
    slowest = Math.max(slowest, Date.now() - t);
    if (onPoll) await onPoll();
    if (v) return { value: v, slowest, seconds: (Date.now() - t0) / 1e3 };
    if (Date.now() - t0 > seconds * 1e3) throw new Error(`timed out after ${seconds} s waiting for ${expression}`);
    await sleep(200);
  }
}

// Pixel statistics of a grid canvas (tiles of 28x28, 1-pixel gaps): the mean over tiles of the
// pixels' standard deviation and of the correlation of horizontally neighbouring pixels. Images:
// spread > 20 and correlation ~0.8-0.9; a blank canvas: spread 0; noise: correlation ~0.
const CANVAS_STATS = (id) => `(() => {
  const c = document.getElementById('${id}'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const cols = Math.floor((c.width - 1) / 29), rows = Math.floor((c.height - 1) / 29);
  let spread = 0, corr = 0, n = 0;
  for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) {
    const px = (x, y) => d[((1 + r * 29 + y) * c.width + 1 + q * 29 + x) * 4];
    let s = 0, s2 = 0, m = 0;
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) { s += px(x, y); s2 += px(x, y) ** 2; }
    const mean = s / 784, v = s2 / 784 - mean * mean;
    if (v < 1e-9) { n++; continue; }
    let cv = 0;
    for (let y = 0; y < 28; y++) for (let x = 0; x < 27; x++) cv += (px(x, y) - mean) * (px(x + 1, y) - mean);
    spread += Math.sqrt(v); corr += cv / (28 * 27) / v; n++;
  }
  return { tiles: n, spread: spread / n, corr: corr / n };
})()`;

async function main() {
  const here = dirname(fileURLToPath(import.meta.url));
  const site = option('site', join(here, 'site')), native = option('native', join(here, 'web-native'));
  const chromium = option('chromium', 'chromium'), shot = option('screenshot', null);
  const ckpt = join(site, 'model.ckpt');
  const test = { n: 10, label: 3, w: 2, sampler: 'ddim', steps: 20, seed: 5, clip: 1 };
  const started = Date.now();

  const server = await serve(site);
  const url = `http://127.0.0.1:${server.address().port}/`;
  const profile = mkdtempSync(join(tmpdir(), 'diffusion-chromium-'));
  const { proc, port } = await launch(chromium, profile);
  let page;
  try {
    page = await connect(port);
    await page.send('Page.enable');
    await page.send('Emulation.setDeviceMetricsOverride', { width: 1000, height: 910, deviceScaleFactor: 1, mobile: false });

    // 1. DDIM-20 for one class, through the page's test hook
    const query = `?sample&class=${test.label}&w=${test.w}&sampler=${test.sampler}&steps=${test.steps}&n=${test.n}&seed=${test.seed}&clip=${test.clip}`;
    await page.send('Page.navigate', { url: url + 'index.html' + query });
    await until(page, 'window.diffusionPage && (diffusionPage.ready || diffusionPage.error)', 60);
    check(await page.evaluate('diffusionPage.ready && /^model.ckpt: linear schedule, T = 1000, 795,105 parameters/.test(diffusionPage.status)'),
      'the page loads the shipped model in WebAssembly', await page.evaluate('diffusionPage.status'));
    const seen = new Set();
    const run = await until(page, 'diffusionPage.done || diffusionPage.error', 600,
      async () => seen.add(await page.evaluate('diffusionPage.frames')));
    const err = await page.evaluate('diffusionPage.error');
    check(!err, `DDIM with ${test.steps} steps, class ${test.label}, w = ${test.w}, ${test.n} images: done in ${run.seconds.toFixed(1)} s`, err);
    check(seen.size >= 3, `it denoises live: ${seen.size} different frame counts seen while it ran (of ${test.steps + 1} frames)`);
    check(run.slowest < 2000, `the page stays responsive while it samples (slowest answer ${run.slowest} ms; the sampler runs in a Web Worker)`);

    // 2. the same numbers as the native build
    const mine = await page.evaluate('diffusionPage.final');
    const ref = execFileSync(native, ['sample', ckpt, test.n, test.label, test.w, test.sampler, test.steps, test.seed, test.clip].map(String),
      { encoding: 'utf8', maxBuffer: 1 << 26 }).trim().split('\n').map(Number);
    let maxDiff = 0, unequal = 0;
    for (let k = 0; k < ref.length; k++) {
      const d = Math.abs(mine[k] - Math.fround(ref[k]));
      maxDiff = Math.max(maxDiff, isNaN(d) ? Infinity : d);
      unequal += d !== 0;
    }
    check(mine && mine.length === ref.length && maxDiff < 1e-3,
      `same seed, same samples as the native build (web-native, cc -O2): max |difference| ${maxDiff.toExponential(2)} ` +
      `over ${ref.length} pixels (${unequal} not bit-identical)`, `page ${mine && mine.length} values, native ${ref.length}`);

    // 3. the canvas: images, neither blank nor noise; and frame 0 is noise (the statistic tells them apart)
    const fin = await page.evaluate(CANVAS_STATS('xt'));
    check(fin.tiles === test.n && fin.spread > 20 && fin.corr > 0.5,
      `the canvas shows images: ${fin.tiles} tiles, pixel spread ${fin.spread.toFixed(1)} (> 20: not blank), ` +
      `neighbour correlation ${fin.corr.toFixed(2)} (> 0.5: not noise)`);
    if (shot) {
      await page.evaluate(`(() => { const s = document.getElementById('scrub'); s.value = ${Math.round(test.steps * 0.7)}; s.dispatchEvent(new Event('input')); })()`);
      const png = await page.send('Page.captureScreenshot', { format: 'png' });
      writeFileSync(shot, Buffer.from(png.data, 'base64'));
      console.log(`      screenshot (slider at frame ${Math.round(test.steps * 0.7)}): ${shot}`);
    }
    await page.evaluate(`(() => { const s = document.getElementById('scrub'); s.value = 0; s.dispatchEvent(new Event('input')); })()`);
    const noise = await page.evaluate(CANVAS_STATS('xt'));
    check(noise.corr < 0.2, `the slider scrubs back to frame 0, x_T: pure noise (neighbour correlation ${noise.corr.toFixed(2)} < 0.2)`);

    // 4. the forward tab: x_t at t = 500 and its coefficients, against the float64 table
    await until(page, 'diffusionPage.forwardReady', 30);
    await page.evaluate(`(() => { document.querySelector('nav button[data-tab=forward]').click();
      const s = document.getElementById('ft'); s.value = 500; s.dispatchEvent(new Event('input')); })()`);
    const fw = await page.evaluate('diffusionPage.forward');
    const row = readFileSync(join(here, '../../data/schedule_linear_T1000.txt'), 'utf8').split('\n').find((l) => l.startsWith('500 '));
    const ab = +row.split(' ')[3], text = await page.evaluate("document.getElementById('fcoef').textContent");
    const fxt = await page.evaluate(CANVAS_STATS('fxt'));
    check(fw && fw.t === 500 && Math.abs(fw.sqrtAlphaBar - Math.sqrt(ab)) < 1e-12 && Math.abs(fw.sqrtOneMinusAlphaBar - Math.sqrt(1 - ab)) < 1e-9 &&
      text.includes(Math.sqrt(ab).toFixed(6)) && fxt.spread > 20,
      `forward tab, test image 0 at t = 500: "${text.replace(/\s+/g, ' ').trim()}" (float64 table: sqrt(alpha_bar_500) = ${Math.sqrt(ab).toFixed(6)})`);
    // a picture the user drops: here the x_0 canvas itself as a PNG (RGBA: read as colour), then a text file
    await page.evaluate(`new Promise((ok) => document.getElementById('f0').toBlob((b) => b.arrayBuffer()
      .then((a) => ok(diffusionPage.forwardFile(new Uint8Array(a), 'shoe.png')))))`);
    const png = await page.evaluate("[document.getElementById('fmsg').textContent, diffusionPage.forward.sqrtAlphaBar]");
    check(png[0] === 'your image shoe.png, as diffusion.c reads it: 28x28, RGB' && png[1] === fw.sqrtAlphaBar,
      `forward tab, a dropped PNG: "${png[0]}"`);
    await page.evaluate("diffusionPage.forwardFile(new TextEncoder().encode('hello'), 'cat.gif')");
    const gif = await page.evaluate("(() => { const m = document.getElementById('fmsg'); return m.className + '|' + m.textContent; })()");
    check(/^error\|diffusion: cat\.gif: not a readable PNG\/JPEG image \(.+\)$/.test(gif), `forward tab, a dropped non-image: "${gif.split('|')[1]}"`);
    await page.evaluate("document.querySelector('nav button[data-tab=reverse]').click()");

    // 5. malformed checkpoints: diffusion.c's message on the page; the model before stays loaded
    const bad = [
      ['broken.ckpt', 'new Uint8Array([104, 101, 108, 108, 111, 10])', /^diffusion: broken\.ckpt: not a diffusion\.c checkpoint \(too short: 6 bytes\)$/],
      ['half.ckpt', "new Uint8Array(await (await fetch('model.ckpt')).arrayBuffer()).slice(0, 3000)", /^diffusion: half\.ckpt: checkpoint is 3000 bytes, expected \d+ \(truncated or corrupt\)$/],
      ['flipped.ckpt', "(() => { return fetch('model.ckpt').then(r => r.arrayBuffer()).then(b => { const u = new Uint8Array(b); u[5000] ^= 255; return u; }); })()", /^diffusion: flipped\.ckpt: checkpoint is corrupt \(CRC-32 mismatch\)$/],
      ['notes.txt', "new TextEncoder().encode('DIFFUSNC' + 'x'.repeat(200))", /^diffusion: notes\.txt: checkpoint is corrupt \(CRC-32 mismatch\)$/],
    ];
    for (const [name, bytes, want] of bad) {
      await page.evaluate(`(async () => diffusionPage.loadCheckpoint(await ${bytes}, '${name}'))()`);
      const e = await until(page, 'diffusionPage.error || diffusionPage.ready', 30);
      const shown = await page.evaluate("(() => { const s = document.getElementById('status'); return s.className + '|' + s.textContent; })()");
      check(want.test(e.value) && shown === 'error|' + e.value, `malformed checkpoint ${name}: the page says "${e.value}"`, `shown: ${shown}`);
    }
    // Stop: DDPM (1000 steps), stopped after a few frames; the slider then covers the frames it has
    await page.evaluate(`(() => { const $ = (i) => document.getElementById(i); $('class').value = -2; $('sampler').value = 'ddpm';
      $('n').value = 5; $('sample').click(); })()`);
    await until(page, 'diffusionPage.frames >= 3', 120);
    await page.evaluate("document.getElementById('stop').click()");
    await sleep(1500);
    const stopped = await page.evaluate(`[diffusionPage.sampling, diffusionPage.frames, +document.getElementById('scrub').max,
      document.getElementById('scrub').disabled, document.getElementById('progress').textContent]`);
    check(!stopped[0] && stopped[1] >= 3 && stopped[1] < 1000 && stopped[2] === stopped[1] - 1 && !stopped[3] && /\(stopped\)$/.test(stopped[4]),
      `Stop during DDPM: stopped after ${stopped[1]} of 1001 frames, the slider covers those`, JSON.stringify(stopped));
    await page.evaluate(`(() => { const $ = (i) => document.getElementById(i); $('class').value = 3; $('sampler').value = 'ddim';
      $('steps').value = 2; $('n').value = 5; $('sample').click(); })()`);
    const after = await until(page, 'diffusionPage.done || (!diffusionPage.sampling && diffusionPage.error)', 120);
    check(await page.evaluate('diffusionPage.done && diffusionPage.final.length === 5 * 784'),
      'after the refused checkpoints, the model loaded before still samples (DDIM, 2 steps)', String(after.value));

    // 6. speed of the forward pass: WebAssembly here, native web-native (the plain cc -O2 build)
    await page.evaluate('diffusionPage.imagesPerSecond = 0, diffusionPage.bench(10, 5)');
    const wasm = (await until(page, 'diffusionPage.imagesPerSecond', 300)).value;
    const nat = +execFileSync(native, ['bench', ckpt, '10', '5'], { encoding: 'utf8' });
    check(wasm > 0 && nat > 0, `speed of the forward pass, batch 10: WebAssembly ${wasm.toFixed(1)} images/s, ` +
      `native ${nat.toFixed(1)} images/s (WebAssembly at ${(100 * wasm / nat).toFixed(0)}% of native)`);
    console.log(`      browser test: ${((Date.now() - started) / 1e3).toFixed(1)} s`);
  } finally {
    if (page) {
      try { await Promise.race([page.send('Browser.close'), sleep(3000)]); } catch { /* already gone */ }
      page.close();
    }
    await sleep(300);
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* exited */ }
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0;
}
