using System.Reflection;
using System.Text;

namespace HybridDistill.Tokenization;

/// <summary>
/// Unicode normalization forms NFC, NFD, NFKC and NFKD (UAX #15), implemented here because the project builds
/// with InvariantGlobalization, where .NET's <see cref="string.Normalize(NormalizationForm)"/> returns every string
/// unchanged (measured on .NET 10 / Linux: "e\u0301" stays two code points). The data is the Unicode Character
/// Database's (version <see cref="UnicodeVersion"/>), embedded as UnicodeNormalization.txt, which
/// tools/unicode-normalization-data.py generates; the tests check all of Unicode's NormalizationTest.txt.
///
/// Algorithm: full (canonical, or compatibility for the K forms) decomposition with Hangul syllables split
/// arithmetically, canonical ordering of combining marks (a stable sort by combining class between starters), and
/// for NFC/NFKC canonical composition: a mark composes with the last starter unless it is blocked (a character
/// between them with class 0 or a class not lower than its own), and composites with Full_Composition_Exclusion
/// are never formed.
/// </summary>
internal static class UnicodeNormalizer
{
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    sealed class Tables
    {
        public readonly Dictionary<int, byte> Ccc = new();
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compatibility = new();   // compatibility-only mappings
        public readonly Dictionary<long, int> Compose = new();
        public string Version = "";
    }

    static readonly Lazy<Tables> Data = new(Load);

    /// <summary>The Unicode version of the embedded data.</summary>
    public static string UnicodeVersion => Data.Value.Version;

    public static string Normalize(string text, TextNormalization form)
    {
        bool compose = form is TextNormalization.Nfc or TextNormalization.Nfkc;
        bool compat = form is TextNormalization.Nfkc or TextNormalization.Nfkd;
        if (form is not (TextNormalization.Nfc or TextNormalization.Nfd or TextNormalization.Nfkc or TextNormalization.Nfkd))
            throw new ArgumentOutOfRangeException(nameof(form), form, "not a Unicode normalization form");

        // Text below these bounds is unchanged by the form: no character there decomposes, has a non-zero
        // combining class, or (NFC) can be the second half of a composition.
        int bound = form switch { TextNormalization.Nfc => 0x300, TextNormalization.Nfd => 0xC0, _ => 0xA0 };
        bool trivial = true;
        foreach (char c in text)
            if (c >= bound) { trivial = false; break; }
        if (trivial) return text;

        var t = Data.Value;
        var cps = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes()) Decompose(t, rune.Value, compat, cps);
        Reorder(t, cps);
        if (compose) Compose(t, cps);

        var sb = new StringBuilder(cps.Count + 4);
        foreach (int cp in cps)
        {
            if (cp < 0x10000) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    static int CombiningClass(Tables t, int cp) => t.Ccc.TryGetValue(cp, out byte c) ? c : 0;

    static void Decompose(Tables t, int cp, bool compat, List<int> output)
    {
        int s = cp - SBase;
        if ((uint)s < SCount)
        {
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (t.Canonical.TryGetValue(cp, out var m) || (compat && t.Compatibility.TryGetValue(cp, out m)))
        {
            foreach (int x in m) Decompose(t, x, compat, output);
            return;
        }
        output.Add(cp);
    }

    /// <summary>Canonical ordering: within each run of non-starters, a stable sort by combining class.</summary>
    static void Reorder(Tables t, List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int cc = CombiningClass(t, cps[i]);
            if (cc == 0) continue;
            int j = i;
            int cp = cps[i];
            while (j > 0)
            {
                int prev = CombiningClass(t, cps[j - 1]);
                if (prev <= cc) break;       // starters (0) and lower-or-equal classes stay in front
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = cp;
        }
    }

    static void Compose(Tables t, List<int> cps)
    {
        if (cps.Count == 0) return;
        int write = 0, starter = -1, lastClass = -1;   // lastClass: class of the last kept character after the starter; -1 = none
        for (int read = 0; read < cps.Count; read++)
        {
            int cp = cps[read];
            int cc = CombiningClass(t, cp);
            if (starter >= 0 && (lastClass == -1 || (lastClass != 0 && lastClass < cc)) &&
                TryCompose(t, cps[starter], cp, out int composite))
            {
                cps[starter] = composite;
                continue;
            }
            if (cc == 0) { starter = write; lastClass = -1; }
            else lastClass = cc;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    static bool TryCompose(Tables t, int first, int second, out int composite)
    {
        int l = first - LBase, v = second - VBase;
        if ((uint)l < LCount && (uint)v < VCount)
        {
            composite = SBase + (l * VCount + v) * TCount;
            return true;
        }
        int s = first - SBase, tt = second - TBase;
        if ((uint)s < SCount && s % TCount == 0 && tt > 0 && tt < TCount)
        {
            composite = first + tt;
            return true;
        }
        return t.Compose.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    static Tables Load()
    {
        var t = new Tables();
        using var stream = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream("HybridDistill.Tokenization.UnicodeNormalization.txt")
                           ?? throw new InvalidOperationException("embedded resource UnicodeNormalization.txt is missing from the build");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var excluded = new HashSet<int>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.StartsWith('#'))
            {
                const string marker = "# Unicode ";
                if (t.Version.Length == 0 && line.StartsWith(marker, StringComparison.Ordinal))
                    t.Version = line[marker.Length..line.IndexOf(' ', marker.Length)];
                continue;
            }
            if (line.Length == 0) continue;
            var f = line.Split(';');
            int cp = Convert.ToInt32(f[0], 16);
            byte ccc = byte.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture);
            if (ccc != 0) t.Ccc[cp] = ccc;
            if (f[3] == "X") excluded.Add(cp);
            if (f[2].Length == 0) continue;
            bool isCompat = f[2][0] == '<';
            string mapping = isCompat ? f[2][(f[2].IndexOf('>') + 1)..] : f[2];
            int[] m = mapping.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(h => Convert.ToInt32(h, 16)).ToArray();
            (isCompat ? t.Compatibility : t.Canonical)[cp] = m;
        }
        foreach (var (cp, m) in t.Canonical)
            if (m.Length == 2 && !excluded.Contains(cp))
                t.Compose[((long)m[0] << 21) | (uint)m[1]] = cp;
        return t;
    }
}
