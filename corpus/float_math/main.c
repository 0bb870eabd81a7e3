/* float_math: double and float arithmetic without libm.  Every result is
 * exactly specified by IEEE 754 (no fused multiply-add: kitlibc.h disables
 * contraction), so the output is identical on every target. */
#include <kitlibc.h>

double inputs[] = { 2.0, 10.0, 0.25, 12345.678, 1e-6, 81.0 };
float finputs[] = { 1.5f, -2.75f, 16777217.0f, 0.1f };
double zero = 0.0;

static double abs_d(double x)
{
    return x < 0 ? -x : x;
}

/* Newton's method: x' = (x + a/x) / 2, until it stops changing. */
static double newton_sqrt(double a, int *iterations)
{
    double x = a > 1 ? a : 1.0, prev = 0;
    int n = 0;
    if (a == 0)
        return 0;
    while (x != prev && n < 200) {
        double next = (x + a / x) * 0.5;
        prev = x;
        x = next;
        n++;
        if (x == prev)
            break;
        if (n > 2 && abs_d(x - prev) < 1e-300)
            break;
    }
    *iterations = n;
    return x;
}

static double leibniz_pi(int terms)
{
    double sum = 0;
    int k;
    for (k = 0; k < terms; k++) {
        double term = 1.0 / (2 * k + 1);
        sum += (k % 2 == 0) ? term : -term;
    }
    return 4 * sum;
}

static double euler_e(void)
{
    double e = 1, term = 1;
    int n;
    for (n = 1; n < 20; n++) {
        term /= n;
        e += term;
    }
    return e;
}

/* Ten double arguments: some of them are passed on the stack. */
static double weighted(double a, double b, double c, double d, double e,
                       double f, double g, double h, double i, double j)
{
    double s = a;
    s += 2 * b;
    s += 3 * c;
    s += 4 * d;
    s += 5 * e;
    s += 6 * f;
    s += 7 * g;
    s += 8 * h;
    s += 9 * i;
    s += 10 * j;
    return s;
}

static double mixed(int a, double b, long c, float d, int e, double f)
{
    double r = a;
    r *= b;
    r += (double)c;
    r -= d;
    r *= e;
    return r / f;
}

static void mandelbrot(void)
{
    static const char shades[] = " .:-=+*#%@";
    int row, col;
    for (row = 0; row < 11; row++) {
        char line[41];
        double ci = -1.0 + row * 0.2;
        for (col = 0; col < 40; col++) {
            double cr = -2.0 + col * 0.065;
            double zr = 0, zi = 0;
            int it = 0;
            while (it < 50) {
                double zr2 = zr * zr, zi2 = zi * zi;
                double cross;
                if (zr2 + zi2 > 4.0)
                    break;
                cross = zr * zi;
                zi = cross + cross + ci;
                zr = zr2 - zi2 + cr;
                it++;
            }
            line[col] = shades[it >= 50 ? 9 : it % 9];
        }
        line[40] = '\0';
        printf("|%s|\n", line);
    }
}

int main(void)
{
    double pi = leibniz_pi(100000), e = euler_e();
    double x, inf;
    int i, it;

    puts("-- arithmetic and formatting");
    printf("pi~%f e~%.15f pi*e=%g pi/e=%.10g\n", pi, e, pi * e, pi / e);
    printf("[%12.4f] [%-12.3e] [%+.2f] [%012.5f] [%g] [%G]\n", pi, e, -pi, e,
           pi * 1e-5, e * 1e20);
    printf("0.1+0.2=%.17g 1/3=%.20f 2/3=%e\n", 0.1 + 0.2, 1.0 / 3, 2.0 / 3);
    printf("large: %f %e %g\n", 1e22, 123456789012345678.0, 9007199254740993.0);
    printf("small: %g %e %.3g\n", 1e-310, 4.9406564584124654e-324, 0.000123456);
    printf("weighted=%g mixed=%.6f\n", weighted(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
           mixed(3, 2.5, 1000000L, 0.5f, -4, 8.0));
    inf = 1.0 / zero;
    printf("inf: %f %e %g, -inf: %f, nan==nan: %d, inf>1e308: %d\n", inf, inf, inf,
           -inf, (inf - inf) == (inf - inf), inf > 1e308);

    puts("-- newton sqrt");
    for (i = 0; i < 6; i++) {
        double r = newton_sqrt(inputs[i], &it);
        double sq = r * r;
        printf("sqrt(%g) = %.15g (iterations %d, r*r-a = %.3g)\n", inputs[i], r, it,
               sq - inputs[i]);
    }
    x = newton_sqrt(2.0, &it);
    printf("sqrt(2) to 17 digits: %.17g\n", x);

    puts("-- conversions");
    printf("(int)3.99=%d (int)-3.99=%d (int)0.5=%d (int)-0.5=%d\n", (int)3.99,
           (int)-3.99, (int)inputs[2], (int)-inputs[2]);
    printf("(long long)(1e15+0.75)=%lld (long long)-9.2e18=%lld\n",
           (long long)(inputs[1] * 1e14 + 0.75), (long long)(-9.2e18 * (inputs[0] / 2)));
    printf("(unsigned)3.5e9=%u (unsigned long long)1.8e19=%llu\n",
           (unsigned int)(3.5e9 * (inputs[0] / 2)),
           (unsigned long long)(1.8e19 * (inputs[0] / 2)));
    printf("(double)(1ull<<53 + 1)=%.1f (double)-(1ll<<62)=%.1f\n",
           (double)((1ull << 53) + 1), (double)-(1ll << 62));
    for (i = 0; i < 4; i++) {
        float f = finputs[i];
        float g = f * 3.0f;
        printf("float %g: *3=%.9g (int)=%d as double %.17g\n", (double)f, (double)g,
               (int)g, (double)f);
    }
    printf("float sum 0.1f*10=%.9g double sum 0.1*10=%.17g\n",
           (double)(finputs[3] * 10.0f), inputs[0] * 0.5 * 10 * 0.1);

    puts("-- mandelbrot");
    mandelbrot();
    return 0;
}
