using HybridDistill.Evaluation;

namespace HybridDistill.Tests.Evaluation;

public class ProportionTests
{
    [Theory]
    [InlineData(8, 10, 0.8, 0.4902, 0.9433)]   // Wilson (1927); e.g. R's prop.test without continuation correction
    [InlineData(0, 10, 0.0, 0.0, 0.2775)]
    [InlineData(50, 100, 0.5, 0.4038, 0.5962)]
    public void Wilson95_MatchesReferenceValues(int k, int n, double p, double lo, double hi)
    {
        var prop = new Proportion(k, n);
        Assert.Equal(p, prop.Accuracy, 10);
        Assert.Equal(lo, prop.Wilson.Lo, 4);
        Assert.Equal(hi, prop.Wilson.Hi, 4);
    }
}
