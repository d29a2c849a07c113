namespace HybridDistill;

/// <summary>
/// Bad input from the user (a missing or corrupt file, a config the weights disagree with, an impossible
/// option). The message is for a person: it names the file (and tensor or key) and, where there is one, the
/// fix. The CLI prints it without a stack trace and exits with code 2.
/// </summary>
public sealed class InputException : Exception
{
    public InputException(string message) : base(message) { }
    public InputException(string message, Exception inner) : base(message, inner) { }
}
