// The headers every response of the server carries, the stream's refusals included. Pure.

/**
 * On every response, errors included. The API serves only JSON and text: nothing may run,
 * load or frame it (a web page served later sets its own policy on its own routes).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'Referrer-Policy': 'no-referrer',
};

/**
 * The console's pages: styles and images from this origin only, no script at all, forms only to
 * this origin, never framed.
 */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};
