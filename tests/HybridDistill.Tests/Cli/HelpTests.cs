using System.Text.RegularExpressions;

namespace HybridDistill.Tests.Cli;

/// <summary>Every command's --help renders (option descriptions are Spectre markup: a stray "[...]" crashed `select --help`).</summary>
public class HelpTests
{
    /// <summary>The command names a help page lists under COMMANDS (lines indented by four spaces, the name first).</summary>
    static IReadOnlyList<string> CommandsListedBy(string help)
    {
        int start = help.IndexOf("COMMANDS:", StringComparison.Ordinal);
        if (start < 0) return [];
        return help[(start + "COMMANDS:".Length)..].Split('\n')
            .Select(line => Regex.Match(line, "^    ([a-z][a-z0-9-]*)"))
            .Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToArray();
    }

    [Fact]
    public void EveryCommand_RendersItsHelp()
    {
        var (code, top, err) = CliHarness.Run("--help");
        Assert.True(code == 0, err);
        var commands = CommandsListedBy(top);
        Assert.Contains("run", commands);
        Assert.Contains("select", commands);
        var pages = new List<string>();
        foreach (var command in commands)
        {
            var (c, page, e) = CliHarness.Run(command, "--help");
            Assert.True(c == 0, $"hybrid {command} --help: exit {c}: {e}");
            Assert.Contains("USAGE", page);
            pages.Add(command);
            foreach (var sub in CommandsListedBy(page))        // branches: distill stage1, bench decode, corpus synth, ...
            {
                var (sc, subPage, se) = CliHarness.Run(command, sub, "--help");
                Assert.True(sc == 0, $"hybrid {command} {sub} --help: exit {sc}: {se}");
                Assert.Contains("USAGE", subPage);
                pages.Add($"{command} {sub}");
            }
        }
        Assert.Contains("bench decode", pages);
        Assert.Contains("distill stage2", pages);
    }
}
