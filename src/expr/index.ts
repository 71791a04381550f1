export { ExprEvalError, ExprSyntaxError } from './errors.js';
export { compileRegex, isTruthy, MAX_REGEX_LENGTH, toStr } from './evaluate.js';
export {
  type CompiledExpr,
  type CompiledTemplate,
  compileExpr,
  compileTemplate,
  type EvalOptions,
  evaluateBoolean,
  evaluateExpr,
  freeVariables,
  MAX_TEMPLATE_LENGTH,
  renderCompiledTemplate,
  renderTemplate,
  type Scope,
  templateFreeVariables,
} from './expr.js';
export { FUNCTION_NAMES, type FunctionName, MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH } from './parser.js';
