/**
 * Orders two strings by their UTF-16 code units, as `<` does: the same on every host and locale.
 * Not localeCompare: its ICU collator differs by locale, and in the idle agent daemon it keeps
 * ~2 MB of the node binary's ICU data resident.
 */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
