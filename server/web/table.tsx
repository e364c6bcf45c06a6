// A console table defined by its columns: each column's heading is written once and used twice,
// as the `<th>` and as every cell's `data-label`, which the stylesheet shows above the cell on a
// phone, where the heading row is hidden and each row becomes a card.
import type { Child } from 'hono/jsx';

export interface Column<T> {
  head: string;
  cell: (row: T) => Child;
  /** A class for the cell (status colours), from the row. */
  class?: (row: T) => string;
}

function cellClass<T>(c: Column<T>, row: T): { class?: string } {
  const name = c.class?.(row) ?? '';
  return name === '' ? {} : { class: name };
}

export function WideTable<T>(props: { columns: readonly Column<T>[]; rows: readonly T[] }) {
  return (
    <table class="wide">
      <thead><tr>{props.columns.map((c) => <th scope="col">{c.head}</th>)}</tr></thead>
      <tbody>
        {props.rows.map((r) => (
          <tr>{props.columns.map((c) => <td data-label={c.head} {...cellClass(c, r)}>{c.cell(r)}</td>)}</tr>
        ))}
      </tbody>
    </table>
  );
}
