// Every text colour of the console's stylesheet against every background text sits on: 4.5:1 or
// more (WCAG 2.1 AA for normal text), computed from the stylesheet itself.
import { describe, expect, it } from 'vitest';
import { CONSOLE_CSS } from './styles.js';

function luminance(hex: string): number {
  const h = hex.length === 4 ? [...hex.slice(1)].map((c) => c + c).join('') : hex.slice(1);
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(h.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}
const contrast = (a: string, b: string): number => {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x! + 0.05) / (y! + 0.05);
};

describe('the console stylesheet', () => {
  const rules = [...CONSOLE_CSS.matchAll(/([^{}]+)\{([^}]*)\}/g)].map((m) => ({ selector: m[1]!.trim(), body: m[2]! }));
  const header = rules.filter((r) => r.selector.startsWith('header'));
  const light = rules.filter((r) => !r.selector.startsWith('header')).flatMap((r) => [...r.body.matchAll(/background:(#[0-9a-f]{3,6})/gi)].map((m) => m[1]!));

  it('keeps 4.5:1 for every text colour on every light background, and in the header', () => {
    const texts = rules.filter((r) => !r.selector.startsWith('header')).flatMap((r) => [...r.body.matchAll(/(?:^|;)color:(#[0-9a-f]{3,6})/gi)].map((m) => m[1]!));
    expect(texts.length).toBeGreaterThan(5);
    expect(light.length).toBeGreaterThan(3);
    for (const t of texts) for (const b of light) expect([t, b, contrast(t, b) >= 4.5]).toEqual([t, b, true]);
    const headerBg = /background:(#[0-9a-f]{3,6})/.exec(header.map((r) => r.body).join(';'))![1]!;
    for (const m of header.map((r) => r.body).join(';').matchAll(/(?:^|;)color:(#[0-9a-f]{3,6})/gi)) expect(contrast(m[1]!, headerBg)).toBeGreaterThanOrEqual(4.5);
  });
  it('draws focus at 3:1 or more against the page and the header', () => {
    const ring = /outline:3px solid (#[0-9a-f]{3,6})/.exec(CONSOLE_CSS)![1]!;
    expect(contrast(ring, '#fff')).toBeGreaterThanOrEqual(3);
    const headerRing = /header a:focus,header button:focus\{outline-color:(#[0-9a-f]{3,6})\}/.exec(CONSOLE_CSS)![1]!;
    expect(contrast(headerRing, /header\{[^}]*background:(#[0-9a-f]{3,6})/.exec(CONSOLE_CSS)![1]!)).toBeGreaterThanOrEqual(3);
  });
});
