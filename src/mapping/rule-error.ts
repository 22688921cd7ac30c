// A rule that does not compile, with the path into the rules file that is wrong; config/load.ts
// turns the path into file:line.

export class RuleError extends Error {
  override readonly name = 'RuleError';
  readonly path: ReadonlyArray<string | number>;
  constructor(path: ReadonlyArray<string | number>, message: string) {
    super(message);
    this.path = path;
  }
}
