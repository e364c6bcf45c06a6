// The console's one stylesheet, served from /console.css (the page's CSP allows only 'self').
// Dark text on white, 4.5:1 or more everywhere; a visible focus ring; one column on a phone.
export const CONSOLE_CSS = `
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,sans-serif;color:#1a1a1a;background:#fff}
a{color:#0645ad}
a:focus,button:focus,input:focus,select:focus,textarea:focus,summary:focus{outline:3px solid #b35c00;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.5rem 1rem;background:#1f2d3d;color:#fff}
header a{color:#fff}header nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem}
header form{margin-left:auto}
main{padding:1rem;max-width:1200px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
.counts{display:flex;flex-wrap:wrap;gap:1rem}.counts div{border:1px solid #999;padding:.5rem 1rem;border-radius:4px}
.pet{color:#a10000;font-weight:600}.cattle{color:#11652a;font-weight:600}.stale,.enrolled{color:#5c5c5c}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}.filters label{display:flex;flex-direction:column;font-size:.9rem}
.error{border:2px solid #a10000;padding:.5rem;color:#a10000}
.note{border:2px solid #11652a;padding:.5rem}
fieldset{border:1px solid #999;margin:.5rem 0}
pre.diff{overflow-x:auto;background:#f6f6f6;padding:.5rem;font-size:.85rem}
.add{background:#dff5e1}.del{background:#fbe3e3}.hunk{color:#5a3d8a}
code{overflow-wrap:anywhere}
header a:focus,header button:focus{outline-color:#ffd27a}
input,select,textarea{max-width:100%;font:inherit}
textarea{width:100%;font-family:ui-monospace,monospace;font-size:.9rem}
form.inline{display:inline-block;margin:0 .25rem .25rem 0}
.field-error{color:#a10000;font-weight:600}
[aria-invalid="true"]{border:2px solid #a10000}
pre.excerpt,pre.rules{overflow-x:auto;background:#f6f6f6;padding:.25rem .5rem;color:#1a1a1a}
mark{background:#fff3b0;color:#1a1a1a}
code.once{display:inline-block;padding:.25rem;background:#fff3b0;user-select:all}
@media (max-width:640px){table.wide thead{display:none}table.wide tr{display:block;border-bottom:2px solid #999}table.wide td{display:block;border:0}table.wide td[data-label]::before{content:attr(data-label);display:block;font-size:.8rem;font-weight:600;color:#4a4a4a}}
`;
