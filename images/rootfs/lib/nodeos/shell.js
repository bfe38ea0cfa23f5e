'use strict';
// nsh, NodeOS's shell. The parser is pure; run() executes a parsed line with
// child processes, and interactive() drives a terminal. It serves the console
// (inside init), `sh -c` for npm's scripts, and users' login shells.

const OPERATORS = ['&&', '||', '>>', '2>&1', '2>', ';', '|', '>', '<'];

class ShellSyntaxError extends Error {
  constructor(message, column) {
    super(`syntax error at column ${column}: ${message}`);
    this.column = column;
  }
}

// Words keep which parts were quoted, so expansion leaves quoted text alone.
function tokenize(line) {
  const tokens = [];
  let i = 0;
  while (i < line.length) {
    const ch = line[i];
    if (ch === ' ' || ch === '\t' || ch === '\n') { i++; continue; }
    if (ch === '#') break;
    const op = OPERATORS.find((o) => line.startsWith(o, i));
    if (op) { tokens.push({ op, column: i + 1 }); i += op.length; continue; }
    const word = { parts: [], column: i + 1 };
    while (i < line.length && !' \t\n;|&<>'.includes(line[i])) {
      const c = line[i];
      if (c === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) throw new ShellSyntaxError("unterminated ' quote", i + 1);
        word.parts.push({ text: line.slice(i + 1, end), quoted: true, expand: false });
        i = end + 1;
      } else if (c === '"') {
        let j = i + 1;
        let text = '';
        while (j < line.length && line[j] !== '"') {
          if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1])) { text += '\\' + line[j + 1]; j += 2; }
          else { text += line[j]; j++; }
        }
        if (j >= line.length) throw new ShellSyntaxError('unterminated " quote', i + 1);
        word.parts.push({ text, quoted: true, expand: true });
        i = j + 1;
      } else if (c === '\\') {
        if (i + 1 < line.length) word.parts.push({ text: line[i + 1], quoted: true, expand: false });
        i += 2;
      } else {
        let j = i;
        while (j < line.length && !' \t\n;|&<>\'"\\'.includes(line[j])) j++;
        word.parts.push({ text: line.slice(i, j), quoted: false, expand: true });
        i = j;
      }
    }
    if (line[i] === '&' && !line.startsWith('&&', i)) throw new ShellSyntaxError('background jobs (&) are not supported', i + 1);
    tokens.push(word);
  }
  return tokens;
}

// line := pipeline ((';' | '&&' | '||') pipeline)*
// Returns [{ pipeline: [command], next: ';' | '&&' | '||' | null }]
function parse(line) {
  const tokens = tokenize(line);
  const list = [];
  let commands = [];
  let command = newCommand();
  const finishCommand = (column) => {
    if (command.argv.length === 0) {
      if (command.assignments.length === 0 && command.redirects.length === 0) throw new ShellSyntaxError('missing command', column);
    }
    commands.push(command);
    command = newCommand();
  };
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t];
    if (token.parts) {
      const raw = token.parts.map((p) => p.text).join('');
      if (command.argv.length === 0 && token.parts[0] && !token.parts[0].quoted && /^[A-Za-z_][A-Za-z0-9_]*=/.test(raw)) {
        const eq = token.parts[0].text.indexOf('=');
        const name = token.parts[0].text.slice(0, eq);
        const value = [{ ...token.parts[0], text: token.parts[0].text.slice(eq + 1) }, ...token.parts.slice(1)];
        command.assignments.push({ name, value });
      } else {
        command.argv.push(token.parts);
      }
      continue;
    }
    switch (token.op) {
      case '>': case '>>': case '<': case '2>': {
        const target = tokens[++t];
        if (!target || !target.parts) throw new ShellSyntaxError(`${token.op} needs a file name`, token.column);
        command.redirects.push({ op: token.op, target: target.parts });
        break;
      }
      case '2>&1':
        command.redirects.push({ op: '2>&1' });
        break;
      case '|':
        finishCommand(token.column);
        break;
      default: // ; && ||
        if (command.argv.length === 0 && commands.length === 0 && command.assignments.length === 0) {
          if (token.op === ';' && list.length === 0 && tokens.length === 1) break;
          throw new ShellSyntaxError(`unexpected ${token.op}`, token.column);
        }
        finishCommand(token.column);
        list.push({ pipeline: commands, next: token.op });
        commands = [];
    }
  }
  if (command.argv.length || command.assignments.length || command.redirects.length) finishCommand(line.length + 1);
  else if (commands.length) throw new ShellSyntaxError('missing command after |', line.length + 1);
  if (commands.length) list.push({ pipeline: commands, next: null });
  else if (list.length && list[list.length - 1].next !== ';') throw new ShellSyntaxError(`missing command after ${list[list.length - 1].next}`, line.length + 1);
  return list;
}

function newCommand() { return { assignments: [], argv: [], redirects: [] }; }

// Expands $NAME, ${NAME}, $? and a leading ~ in one word.
function expandWord(parts, env, status = 0) {
  let out = '';
  parts.forEach((part, index) => {
    let text = part.text;
    if (!part.expand) { out += text; return; }
    if (!part.quoted && index === 0 && (text === '~' || text.startsWith('~/'))) text = (env.HOME || '/') + text.slice(1);
    text = text.replace(/\\([\\"$`])|\$(\?|[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})/g, (m, escaped, name) => {
      if (escaped) return escaped;
      if (name === '?') return String(status);
      if (name.startsWith('{')) name = name.slice(1, -1);
      return env[name] ?? '';
    });
    out += text;
  });
  return out;
}

module.exports = { parse, tokenize, expandWord, ShellSyntaxError };
