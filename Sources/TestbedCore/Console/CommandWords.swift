/// Shell-like word splitting for command strings (no expansion).
public enum CommandWords {
    /// Splits on unquoted whitespace; single quotes keep everything, double
    /// quotes and backslashes work as in `sh`.
    public static func split(_ command: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in command {
            if escaped {
                // Inside double quotes a backslash escapes only $ ` " \ (as in
                // sh); before anything else it stays, so "a\nb" keeps its \n.
                if quote == "\"" && !"$`\"\\".contains(character) { current.append("\\") }
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open { quote = nil }
                else if character == "\\" && open == "\"" { escaped = true }
                else { current.append(character) }
                continue
            }
            switch character {
            case "'", "\"":
                quote = character
                inWord = true
            case "\\":
                escaped = true
                inWord = true
            case " ", "\t", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
            default:
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
