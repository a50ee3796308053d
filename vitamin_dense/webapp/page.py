"""The web demo's single page: HTML, CSS and script inline, system fonts, no external asset."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vitamin-dense: open-vocabulary segmentation and detection</title>
<style>
  :root { --ink: #1d2330; --muted: #5d6677; --line: #d9dee7; --accent: #2f6fde;
          --bad: #b42318; --bg: #f6f7f9; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: var(--ink); background: var(--bg); }
  header { padding: 18px 28px 10px; }
  header h1 { margin: 0; font-size: 21px; }
  header p { margin: 4px 0 0; color: var(--muted); }
  main { display: grid; grid-template-columns: 340px 1fr; gap: 22px; padding: 10px 28px 28px; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px; }
  label { display: block; font-weight: 600; margin: 14px 0 5px; }
  label:first-child { margin-top: 0; }
  .hint { font-weight: 400; color: var(--muted); font-size: 13px; }
  input[type=text], select, input[type=number] { width: 100%; padding: 8px 10px;
         border: 1px solid var(--line); border-radius: 7px; font: inherit; background: #fff; }
  input[type=file] { width: 100%; font-size: 14px; }
  .row { display: flex; gap: 10px; }
  .row > div { flex: 1; }
  button { font: inherit; border-radius: 7px; cursor: pointer; }
  #submit { margin-top: 18px; width: 100%; padding: 10px; border: 0; background: var(--accent);
            color: #fff; font-weight: 600; }
  #submit:disabled { opacity: .6; cursor: progress; }
  .link { border: 0; background: none; color: var(--accent); padding: 0; text-decoration: underline; }
  #picked { color: var(--muted); font-size: 13px; margin-top: 4px; }
  #preview { display: block; max-width: 100%; max-height: 160px; margin-top: 8px; border-radius: 6px; }
  #error { display: none; margin-top: 14px; padding: 10px 12px; border-radius: 7px;
           background: #fef3f2; color: var(--bad); border: 1px solid #fecdca; }
  #status { color: var(--muted); min-height: 1.4em; margin-top: 10px; font-size: 14px; }
  #result { display: none; }
  #result-img { display: block; width: 100%; max-width: 960px; border-radius: 6px;
                border: 1px solid var(--line); }
  .result-grid { display: grid; grid-template-columns: minmax(0, 1fr) 320px; gap: 20px; }
  @media (max-width: 1100px) { .result-grid { grid-template-columns: 1fr; } }
  h2 { font-size: 16px; margin: 0 0 10px; }
  table { border-collapse: collapse; width: 100%; font-size: 14px; }
  td { padding: 5px 4px; border-bottom: 1px solid var(--line); vertical-align: middle; }
  td.value { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  td.name { white-space: nowrap; }
  td.detail { color: var(--muted); font-size: 12px; white-space: nowrap; }
  .swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px;
            vertical-align: -2px; margin-right: 7px; border: 1px solid rgba(0,0,0,.25); }
  .downloads { margin-top: 14px; display: flex; gap: 18px; white-space: nowrap; }
  .downloads a { color: var(--accent); }
  #meta { color: var(--muted); font-size: 13px; margin-top: 8px; }
  .empty { color: var(--muted); padding: 40px 0; text-align: center; }
</style>
</head>
<body>
<header>
  <h1>vitamin-dense</h1>
  <p>Name the classes, get masks or boxes: open-vocabulary segmentation and detection on ViTamin.</p>
</header>
<main>
<form class="panel" id="form" autocomplete="off">
  <label for="file">Image <span class="hint">JPEG, PNG, WebP, TIFF, BMP</span></label>
  <input type="file" id="file" accept="image/*">
  <div id="picked">or <button type="button" class="link" id="example">use the example photo</button></div>
  <img id="preview" alt="" hidden>
  <label for="vocab">Classes <span class="hint">e.g. <code>cat, sofa, floor</code>;
    synonyms: <code>kitten, cat; dog</code></span></label>
  <input type="text" id="vocab" name="vocab" placeholder="cat, sofa, floor">
  <div class="row">
    <div><label for="task">Task</label>
      <select id="task"><option>semantic</option><option>panoptic</option>
        <option>instance</option><option>boxes</option></select></div>
    <div><label for="model">Model</label>
      <select id="model"><option value="training-free">training-free</option>
        <option value="trained">trained</option></select></div>
  </div>
  <label for="threshold">Threshold <span class="hint">optional: "none of these" probability
    (segmentation) or minimum box score</span></label>
  <input type="number" id="threshold" min="0" max="1" step="0.05" placeholder="default">
  <button type="submit" id="submit">Run</button>
  <div id="status" role="status"></div>
  <div id="error" role="alert"></div>
</form>
<section class="panel" id="output">
  <div class="empty" id="placeholder">The result appears here.</div>
  <div id="result">
    <div class="result-grid">
      <div><img id="result-img" alt="result"><div id="meta"></div></div>
      <div><h2 id="legend-title">Legend</h2>
        <table id="legend"><tbody></tbody></table>
        <div class="downloads">
          <a id="download-png" download="result.png" href="#">Download picture</a>
          <a id="download-json" download="result.json" href="#">Download JSON</a>
        </div>
      </div>
    </div>
  </div>
</section>
</main>
<script>
const $ = (id) => document.getElementById(id);
let upload = null, example = null, models = {};

function showError(text) {
  const e = $('error'); e.textContent = text; e.style.display = text ? 'block' : 'none';
  if (text) {  // never leave another request's result beside a message
    $('result').style.display = 'none'; $('placeholder').style.display = 'block';
    $('placeholder').textContent = 'No result: see the message on the left.';
  }
}

fetch('/api/info').then(r => r.json()).then(info => {
  models = info.models;
  for (const opt of $('model').options) opt.disabled = !(opt.value in models);
  syncTasks();
});
function syncTasks() {
  const tasks = models[$('model').value] || [];
  for (const opt of $('task').options) opt.disabled = !tasks.includes(opt.value);
  if (tasks.length && !tasks.includes($('task').value)) $('task').value = tasks[0];
}
$('model').addEventListener('change', syncTasks);

function preview(url) { const p = $('preview'); p.src = url; p.hidden = false; }
$('preview').addEventListener('error', () => { $('preview').hidden = true; });
$('file').addEventListener('change', () => {
  upload = $('file').files[0] || null; example = null;
  if (upload) preview(URL.createObjectURL(upload));
});
$('example').addEventListener('click', () => {
  example = 'sample.jpg'; upload = null; $('file').value = '';
  preview('/examples/sample.jpg');
  if (!$('vocab').value) $('vocab').value = 'cat, wall, floor';
});

$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError('');
  if (!upload && !example) { showError('Choose an image first (or use the example photo).'); return; }
  const q = new URLSearchParams({vocab: $('vocab').value, task: $('task').value,
                                 model: $('model').value, threshold: $('threshold').value});
  if (example) q.set('example', example); else q.set('name', upload.name);
  $('submit').disabled = true; $('status').textContent = 'Running...';
  try {
    const r = await fetch('/api/predict?' + q, {method: 'POST', body: example ? null : upload,
                                                headers: {'Content-Type': 'application/octet-stream'}});
    const data = await r.json();
    if (!data.ok) { showError(data.error); $('status').textContent = ''; return; }
    render(data);
    const m = data.meta;
    $('status').textContent = `Done in ${m.seconds.toFixed(2)} s` +
        (m.features_cached ? ' (image features reused)' : '');
  } catch (err) {
    showError('The server did not answer: ' + err);
    $('status').textContent = '';
  } finally { $('submit').disabled = false; }
});

function render(data) {
  $('placeholder').style.display = 'none';
  $('result').style.display = 'block';
  $('result-img').src = data.image;
  $('download-png').href = data.image;
  const blob = new Blob([JSON.stringify(data.record, null, 1)], {type: 'application/json'});
  $('download-json').href = URL.createObjectURL(blob);
  const boxes = data.meta.task === 'boxes';
  $('legend-title').textContent = boxes ? `Boxes (${data.legend.length})` :
      data.meta.task === 'instance' ? `Instances (${data.legend.length})` : 'Classes';
  const body = $('legend').querySelector('tbody');
  body.replaceChildren();
  for (const row of data.legend) {
    const tr = document.createElement('tr'); tr.className = 'legend-row';
    const name = document.createElement('td'); name.className = 'name';
    const sw = document.createElement('span'); sw.className = 'swatch'; sw.style.background = row.color;
    name.append(sw, document.createTextNode(row.name));
    const value = document.createElement('td'); value.className = 'value'; value.textContent = row.value;
    const detail = document.createElement('td'); detail.className = 'detail'; detail.textContent = row.detail;
    tr.append(name, value, detail); body.append(tr);
  }
  if (!data.legend.length) {
    const tr = document.createElement('tr'); const td = document.createElement('td');
    td.textContent = boxes ? 'No box above the threshold.' : 'Nothing found.'; tr.append(td); body.append(tr);
  }
  $('meta').textContent = `${data.meta.model}, ${data.meta.task}; classes: ${data.meta.classes.join(', ')}`;
}
</script>
</body>
</html>
"""

__all__ = ['PAGE']
