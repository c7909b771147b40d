"""The report page's style sheet and its one script (no library, nothing loaded from the network)."""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:12px 24px}header h1{margin:0;font-size:22px}
header p{margin:2px 0 6px;color:#d0d7de}nav a{color:#9ecbff;margin-right:4px}
main{padding:8px 24px 40px}section{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:16px 0;
padding:4px 16px 16px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f6f8fa}
.table{overflow-x:auto}.note{color:#9a6700}.source{color:#57606a;font-size:12px;margin:0}
.answers td{text-align:left;vertical-align:top;min-width:6em}
figure.plot{margin:10px 0}figure.plot img{max-width:100%;display:block}
body.x-prompts img.x-step,body:not(.x-prompts) img.x-prompts{display:none}
.axis button{margin-left:6px;padding:2px 10px;border:1px solid #d0d7de;background:#f6f8fa;border-radius:4px;
cursor:pointer}.axis button.on{background:#0969da;color:#fff}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{width:360px;border:1px solid #d0d7de;border-radius:6px;
padding:8px;font-size:12.5px;background:#fff}.pair{display:flex;gap:8px}
.img{margin:0;text-align:center;font-size:11px;color:#57606a}
.img img{width:170px;height:170px;object-fit:contain;image-rendering:pixelated;border:1px solid #d0d7de;
background:#eee}.missing{width:170px;height:170px;border:1px dashed #cf222e;color:#cf222e;overflow:hidden}
.meta{color:#57606a;margin:4px 0}.a,.q,.t{margin:3px 0}.plus b{color:#1a7f37}.minus b{color:#cf222e}
.score{display:inline-block;min-width:22px;padding:0 4px;border-radius:8px;background:#eaeef2;text-align:center}
.tag{background:#fff8c5;border-radius:4px;padding:0 4px}.sort{font-size:12px;color:#57606a}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:400px}
"""

SCRIPT = """
(function () {
  function sortCards(select) {
    var box = document.getElementById(select.getAttribute('data-sort-target'));
    var parts = select.value.split(':'), key = parts[0], dir = parts[1] === 'desc' ? -1 : 1;
    var cards = Array.prototype.slice.call(box.children);
    cards.sort(function (a, b) {
      var x = parseFloat(a.getAttribute('data-' + key)), y = parseFloat(b.getAttribute('data-' + key));
      if (isNaN(x)) { return isNaN(y) ? 0 : 1; }
      if (isNaN(y)) { return -1; }
      return dir * (x - y);
    });
    cards.forEach(function (c) { box.appendChild(c); });
  }
  document.querySelectorAll('select[data-sort-target]').forEach(function (select) {
    select.addEventListener('change', function () { sortCards(select); });
    sortCards(select);
  });
  var buttons = document.querySelectorAll('button[data-axis]');
  buttons.forEach(function (button) {
    button.addEventListener('click', function () {
      document.body.classList.toggle('x-prompts', button.getAttribute('data-axis') === 'prompts');
      buttons.forEach(function (other) { other.classList.toggle('on', other === button); });
    });
  });
})();
"""
