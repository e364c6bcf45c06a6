// The store answers with Promises. One used as if it were the value (put in a JSON body, tested
// for truth, dropped on the floor) still type-checks in many places: `c.json({ hosts: promise })`
// compiles and sends `{}`. This walks the server's sources with the type checker and names every
// call whose result is a Promise and is neither awaited, returned, chained, stored nor handed on.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function isPromise(checker: ts.TypeChecker, type: ts.Type): boolean {
  if (type.isUnion()) return type.types.some((t) => isPromise(checker, t));
  const name = type.getSymbol()?.getName();
  return name === 'Promise' || name === 'PromiseLike';
}

/** `p.catch(f)`, `p.then(f, g)`, or `.finally(h)` on one of those: its rejection has a handler. */
function catches(call: ts.CallExpression): boolean {
  if (!ts.isPropertyAccessExpression(call.expression)) return false;
  const method = call.expression.name.text;
  const receiver = call.expression.expression;
  if (method === 'catch') return call.arguments.length === 1;
  if (method === 'then') return call.arguments.length === 2;
  return method === 'finally' && ts.isCallExpression(receiver) && catches(receiver);
}

/** Where a Promise may go: somewhere that waits for it, or keeps it for someone who will. */
function handled(node: ts.CallExpression | ts.Expression): boolean {
  const parent = node.parent;
  if (ts.isExpressionStatement(parent)) return ts.isCallExpression(node) && catches(node);
  if (ts.isParenthesizedExpression(parent) || ts.isAsExpression(parent) || ts.isSatisfiesExpression(parent) || ts.isNonNullExpression(parent)) return handled(parent);
  if (ts.isConditionalExpression(parent) && parent.condition !== node) return handled(parent);
  if (ts.isBinaryExpression(parent) && parent.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken && parent.right === node) return handled(parent);
  if (ts.isAwaitExpression(parent) || ts.isReturnStatement(parent) || ts.isVoidExpression(parent)) return true;
  if (ts.isArrowFunction(parent) && parent.body === node) return true;
  if (ts.isPropertyAccessExpression(parent) && ['then', 'catch', 'finally'].includes(parent.name.text)) return true;
  if (ts.isCallExpression(parent) && parent.arguments.includes(node)) return true;
  if (ts.isArrayLiteralExpression(parent) && ts.isCallExpression(parent.parent)) return true;
  if (ts.isVariableDeclaration(parent) && parent.initializer === node) return true;
  if (ts.isBinaryExpression(parent) && parent.operatorToken.kind === ts.SyntaxKind.EqualsToken && parent.right === node) return true;
  return false;
}

/** Every unhandled Promise-returning call in `files`, as `file:line: text`. */
export function unhandledPromises(files: readonly string[]): string[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(path.join(REPO, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  const program = ts.createProgram(files, parsed.options);
  const checker = program.getTypeChecker();
  const found: string[] = [];
  for (const file of files) {
    const source = program.getSourceFile(file)!;
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && isPromise(checker, checker.getTypeAtLocation(node)) && !handled(node)) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        found.push(`${path.relative(REPO, file)}:${line + 1}: ${node.getText().split('\n')[0]}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe('promises in the server', () => {
  it('are all awaited, returned, chained, stored or handed on: none is used as its value or dropped', () => {
    const files = ts.sys.readDirectory(path.join(REPO, 'server'), ['.ts'], ['**/*.test.ts'], undefined);
    expect(files.length).toBeGreaterThan(40);
    expect(unhandledPromises(files)).toEqual([]);
  });
});
