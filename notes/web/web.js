// web.js — the page (index.html) and its Web Worker, in one file. No math here: every number comes
// from diffusion.c compiled to WebAssembly (diffusion.js + diffusion.wasm, built from web.c).
// - The worker owns the model and runs the sampler one step at a time (web_step), posting x_t and
//   x0_hat after each step: the page never waits for the network.
// - The page draws them, keeps every frame for the slider, and runs the forward process
//   (web_forward_*, cheap) in a second instance of the same module on its own thread.
'use strict';

// The module's stderr: diffusion.c's error line "diffusion: <what>: <why>", shown as it is.
const LOG = { lastError: '' };
const moduleArgs = () => ({ print: () => {}, printErr: (line) => { LOG.lastError = line; } });
const failure = (what) => LOG.lastError || what + ' failed';
const floats = (M, ptr, n) => M.HEAPF32.slice(ptr >> 2, (ptr >> 2) + n);  // a copy
// Writes bytes to the module's in-memory file system, in a fresh folder that becomes the current
// one, and returns the file name: diffusion.c's messages then name the file as the user knows it.
let folders = 0;
function writeFile(M, name, bytes) {
  const dir = '/f' + ++folders;
  M.FS.mkdir(dir);
  M.FS.chdir(dir);
  name = String(name).replace(/[^A-Za-z0-9._-]/g, '_') || 'file';
  M.FS.writeFile(name, bytes);
  return name;
}

if (typeof window === 'undefined') {
  // ---- the worker ----------------------------------------------------------------------------
  importScripts('diffusion.js');
  let M, run = 0, modelFile = null;
  const ready = createDiffusion(moduleArgs()).then((m) => { M = m; });
  const handlers = {
    load(msg) {  // a checkpoint's bytes; a refused one leaves the model loaded before in place
      LOG.lastError = '';
      const before = M.FS.cwd(), name = writeFile(M, msg.name, msg.bytes);
      if (M.ccall('web_load', 'number', ['string'], [name]) !== 0) {
        M.FS.unlink(name);
        M.FS.chdir(before);
        return postMessage({ cmd: 'error', of: 'load', message: failure('loading ' + msg.name) });
      }
      if (modelFile) M.FS.unlink(modelFile);  // the model before it (web.c may reload a model)
      run++;  // a sample in progress belonged to the model before
      modelFile = M.FS.cwd() + '/' + name;
      const info = { classNames: [] };
      'T schedule c h w cond classes step params'.split(' ').forEach((k, i) => { info[k] = M._web_info(i); });
      for (let k = 0; k < info.classes; k++) info.classNames.push(M.UTF8ToString(M._web_class_name(k)));
      postMessage({ cmd: 'loaded', name: msg.name, info });
    },
    sample(o) {
      const me = ++run;
      LOG.lastError = '';
      const S = M.ccall('web_start', 'number',
        ['number', 'number', 'number', 'number', 'string', 'number', 'number', 'number', 'number'],
        [o.n, o.label, o.guided ? 1 : 0, o.w, o.sampler, o.steps, o.eta, o.clip ? 1 : 0, o.seed]);
      if (S < 0) return postMessage({ cmd: 'error', of: 'sample', id: o.id, message: failure('sampling') });
      postMessage({ cmd: 'started', id: o.id, S });
      const size = o.n * o.img, t0 = performance.now();
      let i = 0;
      const step = () => {
        if (me !== run) return;  // stopped, or another sample started
        const t = M._web_time(i), frame = { cmd: 'frame', id: o.id, i, S, t, sqrtAlphaBar: M._web_sqrt_alpha_bar(t) };
        frame.xt = floats(M, M._web_x(), size);  // x_t before step i + 1
        if (i < S && M._web_step() !== i + 1) return postMessage({ cmd: 'error', of: 'sample', id: o.id, message: failure('step') });
        frame.x0 = i < S ? floats(M, M._web_x0_hat(), size) : frame.xt.slice();  // eq. (2) from that x_t
        frame.seconds = (performance.now() - t0) / 1e3;
        postMessage(frame, [frame.xt.buffer, frame.x0.buffer]);
        if (i++ < S) setTimeout(step, 0);  // a 'stop' message can come in between two steps
      };
      step();
    },
    stop() { run++; },
    bench(msg) {
      const ips = M._web_bench(msg.B, msg.reps);
      postMessage(ips < 0 ? { cmd: 'error', of: 'bench', message: failure('bench') } : { cmd: 'bench', B: msg.B, ips });
    },
  };
  onmessage = (e) => ready.then(() => handlers[e.data.cmd](e.data));
} else {
  // ---- the page ------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const worker = new Worker('web.js');
  // What the browser test reads (notes/web/browser_test.mjs).
  const page = (window.diffusionPage = { ready: false, sampling: false, done: false, frames: 0 });
  let info = null, job = null, jobs = 0, autorun = params.has('sample');

  function status(text, isError) {
    page.status = text;
    if (isError) page.error = text;
    $('status').textContent = text;
    $('status').className = isError ? 'error' : '';
    $('note').textContent = isError && info ? ' (the model loaded before is still in use)' : '';
  }
  // [-1, 1] -> bytes as write_image_grid does (NaN black), then a grid of n images (c, h, w) with
  // `cols` columns and 1-pixel white gaps, drawn 1:1 and shown `scale` times larger.
  function toBytes(x) {
    const b = new Uint8ClampedArray(x.length);
    for (let k = 0; k < x.length; k++) {
      const v = (x[k] + 1) * 127.5;
      b[k] = !(v > 0) ? 0 : v > 255 ? 255 : Math.floor(v + 0.5);
    }
    return b;
  }
  function drawGrid(canvas, bytes, n, c, h, w, cols, scale) {
    const W = cols * (w + 1) + 1, H = Math.ceil(n / cols) * (h + 1) + 1;
    canvas.width = W;
    canvas.height = H;
    canvas.style.width = W * scale + 'px';
    const ctx = canvas.getContext('2d'), img = ctx.createImageData(W, H);
    img.data.fill(255);
    for (let i = 0; i < n; i++) {
      const ox = 1 + (i % cols) * (w + 1), oy = 1 + Math.floor(i / cols) * (h + 1);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          for (let ch = 0; ch < 3; ch++)
            img.data[((oy + y) * W + ox + x) * 4 + ch] = bytes[((i * c + (c === 1 ? 0 : ch)) * h + y) * w + x];
    }
    ctx.putImageData(img, 0, 0);
  }

  // ---- the reverse process -------------------------------------------------------------------
  function startSample() {
    const label = +$('class').value, sampler = $('sampler').value, n = +$('n').value;
    const o = { n, label, sampler, guided: info.cond && label !== -2, w: +$('w').value,
      steps: sampler === 'ddpm' ? 0 : +$('steps').value, eta: +$('eta').value, clip: $('clip').checked,
      seed: +$('seed').value, img: info.c * info.h * info.w, id: ++jobs };
    job = { o, cols: Math.min(n, 5), frames: [], S: 0 };
    Object.assign(page, { sampling: true, done: false, final: null, frames: 0, error: null });
    $('scrub').disabled = $('sample').disabled = true;
    $('stop').disabled = false;
    $('progress').textContent = 'starting ...';
    worker.postMessage({ cmd: 'sample', ...o });
  }
  function showFrame(k) {
    const f = job.frames[k];
    drawGrid($('xt'), f.xt, job.o.n, info.c, info.h, info.w, job.cols, 3);
    drawGrid($('x0'), f.x0, job.o.n, info.c, info.h, info.w, job.cols, 3);
    $('frame').textContent = k === job.S ? `frame ${k} of ${job.S}: the sample, t = 0` :
      `frame ${k} of ${job.S}: x_t at t = ${+f.t.toFixed(2)} (sqrt(alpha_bar_t) = ${f.sqrtAlphaBar.toFixed(4)}), ` +
      'and x0_hat from it (eq. 2)';
    drawStrip(k);
  }
  // The first image's trajectory at 11 moments, x_t above and x0_hat below (as traj.png), with
  // the frame shown above outlined.
  function drawStrip(k) {
    const size = info.c * info.h * info.w, cols = 11, bytes = new Uint8ClampedArray(2 * cols * size).fill(255);
    const at = Array.from({ length: cols }, (_, j) => Math.round((j * job.S) / (cols - 1)));
    at.forEach((m, j) => {
      if (!job.frames[m]) return;
      bytes.set(job.frames[m].xt.subarray(0, size), j * size);
      bytes.set(job.frames[m].x0.subarray(0, size), (cols + j) * size);
    });
    drawGrid($('strip'), bytes, 2 * cols, info.c, info.h, info.w, cols, 2);
    const j = Math.round((k * (cols - 1)) / job.S), ctx = $('strip').getContext('2d');
    ctx.strokeStyle = '#d00';
    ctx.strokeRect(j * (info.w + 1) + 0.5, 0.5, info.w + 1, 2 * (info.h + 1));
  }
  function onFrame(m) {
    job.frames[m.i] = { t: m.t, sqrtAlphaBar: m.sqrtAlphaBar, xt: toBytes(m.xt), x0: toBytes(m.x0) };
    page.frames = m.i + 1;
    $('scrub').max = job.S;
    $('scrub').value = m.i;
    showFrame(m.i);
    const done = m.i === job.S, per = m.seconds / (done ? job.S : m.i + 1);
    $('progress').textContent = done ? `done: ${job.S} steps in ${m.seconds.toFixed(1)} s; ` +
      'drag the slider to go back and forth between noise and image' :
      `step ${m.i + 1} of ${job.S}, ${per.toFixed(2)} s per step, about ${Math.round((job.S - m.i - 1) * per)} s to go`;
    if (done) {
      page.final = Array.from(m.xt);
      finishSample(true);
    }
  }
  function finishSample(done) {
    page.sampling = false;
    page.done = done;
    if (job) $('scrub').max = job.frames.length - 1;  // a stopped sample: the frames it has
    $('scrub').disabled = !job || job.frames.length < 2;
    $('sample').disabled = !info;
    $('stop').disabled = true;
  }
  function modelLoaded(name, i) {
    if (page.sampling) {
      finishSample(false);
      $('progress').textContent += ' (stopped: another model was loaded)';
    }
    info = i;
    job = null;  // its frames belong to the model before
    $('scrub').disabled = true;
    const sel = $('class'), add = (v, text) => sel.add(new Option(text, v));
    sel.innerHTML = '';
    if (info.cond) {
      add(-1, 'every class in turn');
      info.classNames.forEach((nm, k) => add(k, `${k}: ${nm || 'class ' + k}`));
    }
    add(-2, 'none (unconditional)');
    if (params.has('class')) sel.value = params.get('class');
    sel.onchange();
    status(`${name}: ${['linear', 'cosine', 'sde'][info.schedule]} schedule, T = ${info.T}, ` +
      `${info.params.toLocaleString('en')} parameters, trained ${info.step} steps, ` +
      `${info.cond ? 'class-conditional' : 'unconditional'}, ${info.c}x${info.h}x${info.w} images`);
    Object.assign(page, { ready: true, model: info });
    $('sample').disabled = page.sampling;
    if (F && !$('fsched').dataset.touched) {
      $('fsched').value = info.schedule;
      $('fT').value = info.T;
      forwardSchedule();
    }
    if (autorun) {
      autorun = false;
      startSample();
    }
  }
  worker.onmessage = (e) => {
    const m = e.data;
    const mine = job && m.id === job.o.id;  // not a message of a sample stopped before
    if (m.cmd === 'loaded') modelLoaded(m.name, m.info);
    else if (m.cmd === 'started' && mine) job.S = page.S = m.S;
    else if (m.cmd === 'frame' && mine && page.sampling) onFrame(m);
    else if (m.cmd === 'error') {
      status(m.message, true);
      if (m.of === 'sample' && mine && page.sampling) {
        finishSample(false);
        $('progress').textContent = '';
      }
      page.ready = !!info;
    } else if (m.cmd === 'bench') {
      page.imagesPerSecond = m.ips;
      $('speed').textContent = `${m.ips.toFixed(1)} images/s (the network's forward pass, batch ${m.B}, here in WebAssembly)`;
    }
  };
  function loadCheckpoint(bytes, name) {
    page.ready = false;
    page.error = null;
    status(`loading ${name} ...`);
    worker.postMessage({ cmd: 'load', bytes, name }, [bytes.buffer]);
  }
  page.loadCheckpoint = loadCheckpoint;
  page.bench = (B, reps) => worker.postMessage({ cmd: 'bench', B, reps });

  // ---- the forward process, in the page's own instance of the module ------------------------
  let F = null, fImages = 0, fSource = null;
  function forwardSchedule() {
    if (F.ccall('web_forward_schedule', 'number', ['number', 'number'], [+$('fsched').value, +$('fT').value]) < 0)
      return forwardMessage(failure('schedule'), true);
    $('ft').max = $('fT').value;
    forwardDraw();
  }
  function forwardMessage(text, isError) {
    $('fmsg').textContent = text;
    $('fmsg').className = isError ? 'error' : '';
  }
  function forwardImage(source) {  // {index} of a test image, or {name, dir} of a file written by writeFile
    LOG.lastError = '';
    if (source.dir) F.FS.chdir(source.dir);
    const c = F.ccall('web_forward_image', 'number', ['number', 'string', 'number'],
      [source.name ? -1 : source.index, source.name || '', +$('fseed').value]);
    if (c < 0) return forwardMessage(failure('reading the image'), true);
    fSource = { ...source, channels: c };
    const k = source.name ? -1 : F._web_forward_data_label(source.index);
    forwardMessage(source.name ? `your image ${source.name}, as diffusion.c reads it: 28x28, ${c === 3 ? 'RGB' : 'grey'}` :
      `Fashion-MNIST test image ${source.index}: ${k} ${F.UTF8ToString(F._web_class_name(k))}`);
    forwardDraw();
  }
  function forwardDraw() {
    if (!fSource) return;
    const t = +$('ft').value, a = F._web_forward(t), b = F._web_forward_noise_scale(t);
    const channels = fSource.channels;
    for (const [id, ptr] of [['f0', F._web_forward_x0()], ['feps', F._web_forward_eps()], ['fxt', F._web_forward_xt()]])
      drawGrid($(id), toBytes(floats(F, ptr, channels * 784)), 1, channels, 28, 28, 1, 7);
    $('ft-label').textContent = `t = ${t}`;
    $('fcoef').textContent = `x_t = ${a.toFixed(4)} x_0 + ${b.toFixed(4)} eps:   sqrt(alpha_bar_t) = ${a.toFixed(6)},   ` +
      `sqrt(1 - alpha_bar_t) = ${b.toFixed(6)}`;
    page.forward = { t, sqrtAlphaBar: a, sqrtOneMinusAlphaBar: b };
  }
  async function forwardStart() {
    F = await createDiffusion(moduleArgs());
    forwardSchedule();
    try {
      const get = async (f) => {
        const r = await fetch(f);
        if (!r.ok) throw new Error(f);
        return new Uint8Array(await r.arrayBuffer());
      };
      const [im, lb] = await Promise.all([get('test-images-idx3-ubyte'), get('test-labels-idx1-ubyte')]);
      F.FS.mkdir('/data');
      F.FS.writeFile('/data/test-images-idx3-ubyte', im);
      F.FS.writeFile('/data/test-labels-idx1-ubyte', lb);
      fImages = F.ccall('web_forward_data', 'number', ['string'], ['/data/test-images-idx3-ubyte']);
    } catch (err) {
      fImages = 0;
    }
    if (fImages > 0) {
      $('findex').max = fImages - 1;
      forwardImage({ index: +$('findex').value });
    } else forwardMessage('no test images here: drop a PNG or JPEG on this tab');
    page.forwardReady = true;
  }
  function readImageFile(file) {
    file.arrayBuffer().then((buf) => page.forwardFile(new Uint8Array(buf), file.name));
  }
  page.forwardFile = (bytes, name) => forwardImage({ name: writeFile(F, name, bytes), dir: F.FS.cwd() });

  // ---- wiring ----------------------------------------------------------------------------
  window.addEventListener('DOMContentLoaded', () => {
    // the test hook: index.html?sample&class=3&sampler=ddim&steps=20&w=2&n=10&seed=5&clip=1
    for (const id of ['w', 'sampler', 'steps', 'n', 'seed', 'eta']) if (params.has(id)) $(id).value = params.get(id);
    if (params.has('clip')) $('clip').checked = params.get('clip') !== '0';
    $('sample').onclick = startSample;
    $('stop').onclick = () => {
      worker.postMessage({ cmd: 'stop' });
      finishSample(false);
      $('progress').textContent += ' (stopped)';
    };
    $('scrub').oninput = () => showFrame(+$('scrub').value);
    $('sampler').onchange = () => {
      $('steps').disabled = $('sampler').value === 'ddpm';
      $('eta').disabled = $('sampler').value !== 'ddim';
    };
    $('sampler').onchange();
    $('class').onchange = () => { $('w').disabled = !info || !info.cond || $('class').value === '-2'; };
    $('ckpt').onchange = () => {
      const f = $('ckpt').files[0];
      if (f) f.arrayBuffer().then((b) => loadCheckpoint(new Uint8Array(b), f.name));
    };
    $('bench').onclick = () => {
      $('speed').textContent = 'measuring ...';
      page.bench(10, 5);
    };
    for (const b of document.querySelectorAll('nav button'))
      b.onclick = () => {
        for (const x of document.querySelectorAll('nav button')) x.classList.toggle('on', x === b);
        for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== b.dataset.tab;
      };
    if (params.get('tab') === 'forward') document.querySelector('nav button[data-tab=forward]').click();
    if (params.has('t')) $('ft').value = params.get('t');  // index.html?tab=forward&t=300: a link for a slide
    $('ft').oninput = forwardDraw;
    $('findex').oninput = () => forwardImage({ index: +$('findex').value });
    $('fseed').oninput = () => fSource && forwardImage(fSource);
    $('fsched').onchange = $('fT').onchange = () => {
      $('fsched').dataset.touched = 1;
      forwardSchedule();
    };
    $('ffile').onchange = () => $('ffile').files[0] && readImageFile($('ffile').files[0]);
    const drop = $('forward');
    drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('drag'); };
    drop.ondragleave = () => drop.classList.remove('drag');
    drop.ondrop = (e) => {
      e.preventDefault();
      drop.classList.remove('drag');
      if (e.dataTransfer.files[0]) readImageFile(e.dataTransfer.files[0]);
    };
    forwardStart();
    const url = params.get('ckpt') || 'model.ckpt';
    fetch(url).then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.arrayBuffer();
    }).then((b) => loadCheckpoint(new Uint8Array(b), url.split('/').pop()))
      .catch((err) => status(`could not fetch ${url} (${err.message}): open the page through a web server, ` +
        'e.g. python3 -m http.server in its folder', true));
  });
}
