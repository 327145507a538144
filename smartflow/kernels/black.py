"""Black-76 on a forward: normal cdf/pdf, tail-accurate prices, greeks per spot point.

Model (design.md §3, greeks.md §4). A European option on the forward ``F`` of its expiry, discounted
with ``df = exp(-r*T)``; ``T`` in years of 365 calendar days. ``K`` is the strike and ``sigma`` the
Black volatility as a fraction. The premium is ``df * B(F, K, sigma, T)``, ``B`` the undiscounted
Black formula.

Tail accuracy. The textbook ``F*N(d1) - K*N(d2)`` of an out-of-the-money (OTM) option subtracts two
nearly equal numbers once ``|d|`` is large against ``sigma*sqrt(T)``, and every in-the-money (ITM)
evaluation buries the time value under the intrinsic value. So the premium is always built as

    ITM:  df * (intrinsic + OTM twin)        (parity: C - P = df*(F - K))
    OTM:  df * sqrt(F*K) * b(x, s),          x = -|ln(F/K)| <= 0, s = sigma*sqrt(T)

where ``b`` is Jäckel's *normalised Black function*, evaluated with the four regions of
"Let's Be Rational" (2013/2016): an asymptotic expansion for ``h = x/s < -10``, a small-``t``
expansion for ``t = s/2 < 0.21``, the plain normal-cdf form when ``b`` is near its maximum, and
Cody's scaled complementary error function ``erfcx`` otherwise. Every region except the cdf one has
the shape ``b = exp(-(h² + t²)/2) * M / sqrt(2*pi)``: the exponent is kept apart from ``M`` so that
the IV solver can work in logarithms (premiums down to 1e-300 neither underflow nor lose digits),
and so that ``vega / b = 1 / M`` costs no exponential. The expansions and ``erfcx`` are ported from
``py_lets_be_rational`` (MIT) / Cody (1969); the original notice:
"Copyright © 2013-2014 Peter Jäckel. Permission to use, copy, modify, and distribute this
software is freely granted, provided that this notice is preserved."

Greeks are reported per point of the *spot* index ``S`` (design.md §3). With ``S > 0`` the implied
carry is ``b_carry = ln(F/S)/T``, i.e. ``F = S*exp(b_carry*T)`` with ``S`` held fixed, so

    delta_S = dV/dS        = delta_F * F/S
    gamma_S = d²V/dS²      = gamma_F * (F/S)²
    theta_S = -dV/dT|_S    = theta_F - b_carry * F * delta_F

with ``delta_F = df*N(d1)`` (call) or ``-df*N(-d1)`` (put), ``gamma_F = df*phi(d1)/(F*s)`` and
``theta_F = -dV/dT|_F = r*V - df*F*phi(d1)*sigma/(2*sqrt(T))``. With ``F = S*exp((r-q)T)`` this is
exactly the Black-Scholes-Merton theta ``-S e^{-qT} phi sigma/(2 sqrt T) + q S e^{-qT} N(d1)
- r K e^{-rT} N(d2)`` (call). Without a spot (``S <= 0`` or NaN) the greeks are per unit of ``F``
and ``b_carry = 0`` (theta holding the forward fixed, Black-76 / futures style). Vega is
``df*F*phi(d1)*sqrt(T)`` per 1.00 of vol in both cases.

:func:`black_greeks` reports theta per calendar day (per-year value / 365) and vega per volatility
point (per-1.00 value / 100); :func:`black_greeks_raw` exposes the per-year / per-1.00 values.
"""

import math

import numpy as np
from numba import njit


SQRT_2PI = 2.5066282746310002
INV_SQRT_2PI = 0.3989422804014327
INV_SQRT2 = 0.7071067811865476
SQRT_PI_OVER_2 = 1.2533141373155003
INV_SQRT_PI = 0.5641895835477563
DAYS_PER_YEAR = 365.0
VOL_POINTS = 100.0

# Region boundaries of the normalised Black function (Let's Be Rational): the asymptotic expansion
# holds to 1.6e-16 for h <= -10; the 12th-order small-t expansion for t < 2*eps**(1/16).
_ETA = -10.0
_TAU = 0.21022410381342865
# Above h + t > 0.85 the first cdf term dominates and the plain form loses nothing.
_CDF_FORM = 0.85


@njit(cache=True, nogil=True, error_model="numpy")
def norm_cdf(x: float) -> float:
    """Standard normal cdf ``0.5*erfc(-x/sqrt(2))``: full relative precision in the lower tail."""
    return 0.5 * math.erfc(-x * INV_SQRT2)


@njit(cache=True, nogil=True, error_model="numpy")
def norm_pdf(x: float) -> float:
    """Standard normal density."""
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit(cache=True, nogil=True, error_model="numpy")
def _exp_x2(y: float) -> float:
    # exp(y*y) with y*y split at a multiple of 1/16 so the exponent's rounding error is not
    # amplified by y² (Cody's trick).
    ysq = math.trunc(y * 16.0) / 16.0
    return math.exp(ysq * ysq) * math.exp((y - ysq) * (y + ysq))


@njit(cache=True, nogil=True, error_model="numpy")
def erfcx(x: float) -> float:
    """Scaled complementary error function ``exp(x²)*erfc(x)`` (W. J. Cody, Math. Comp. 1969).

    For ``x > 0.47`` it is a pure rational function (no exponential), which is what keeps the
    normalised Black function accurate far in the tail.
    """
    y = abs(x)
    if y <= 0.46875:
        ysq = y * y
        num = (((0.185777706184603153 * ysq + 3.1611237438705656) * ysq + 113.864154151050156) * ysq
               + 377.485237685302021) * ysq + 3209.37758913846947  # fmt: skip
        den = (((ysq + 23.6012909523441209) * ysq + 244.024637934444173) * ysq
               + 1282.61652607737228) * ysq + 2844.23683343917062  # fmt: skip
        return (1.0 - x * num / den) * math.exp(ysq)
    if y <= 4.0:
        num = (((((((2.15311535474403846e-8 * y + 0.564188496988670089) * y
                    + 8.88314979438837594) * y + 66.1191906371416295) * y
                  + 298.635138197400131) * y + 881.95222124176909) * y
                + 1712.04761263407058) * y + 2051.07837782607147) * y + 1230.33935479799725  # fmt: skip  # noqa: E501
        den = (((((((y + 15.7449261107098347) * y + 117.693950891312499) * y
                    + 537.181101862009858) * y + 1621.38957456669019) * y
                  + 3290.79923573345963) * y + 4362.61909014324716) * y
                + 3439.36767414372164) * y + 1230.33935480374942  # fmt: skip
        r = num / den
    elif y < 6.71e7:
        ysq = 1.0 / (y * y)
        num = ((((0.0163153871373020978 * ysq + 0.305326634961232344) * ysq
                 + 0.360344899949804439) * ysq + 0.125781726111229246) * ysq
               + 0.0160837851487422766) * ysq + 6.58749161529837803e-4  # fmt: skip
        den = ((((ysq + 2.56852019228982242) * ysq + 1.87295284992346047) * ysq
                + 0.527905102951428412) * ysq + 0.0605183413124413191) * ysq + 0.00233520497626869185  # fmt: skip  # noqa: E501
        r = (INV_SQRT_PI - ysq * num / den) / y
    else:
        r = INV_SQRT_PI / y
    if x < 0.0:
        if x < -26.628:
            return np.inf
        return 2.0 * _exp_x2(x) - r
    return r


@njit(cache=True, nogil=True, error_model="numpy")
def _asymptotic_m(h: float, t: float) -> float:
    # A&S 26.2.12 based 17th-order expansion of [Y(h+t) - Y(h-t)], Y = Phi/phi (Let's Be Rational).
    e = (t / h) * (t / h)
    r = (h + t) * (h - t)
    q = (h / r) * (h / r)
    # fmt: off
    a = (2.0+q*(-6.0E0-2.0*e+3.0*q*(1.0E1+e*(2.0E1+2.0*e)+5.0*q*(-1.4E1+e*(-7.0E1+e*(-4.2E1-2.0*e))+7.0*q*(1.8E1+e*(1.68E2+e*(2.52E2+e*(7.2E1+2.0*e)))+9.0*q*(-2.2E1+e*(-3.3E2+e*(-9.24E2+e*(-6.6E2+e*(-1.1E2-2.0*e))))+1.1E1*q*(2.6E1+e*(5.72E2+e*(2.574E3+e*(3.432E3+e*(1.43E3+e*(1.56E2+2.0*e)))))+1.3E1*q*(-3.0E1+e*(-9.1E2+e*(-6.006E3+e*(-1.287E4+e*(-1.001E4+e*(-2.73E3+e*(-2.1E2-2.0*e))))))+1.5E1*q*(3.4E1+e*(1.36E3+e*(1.2376E4+e*(3.8896E4+e*(4.862E4+e*(2.4752E4+e*(4.76E3+e*(2.72E2+2.0*e)))))))+1.7E1*q*(-3.8E1+e*(-1.938E3+e*(-2.3256E4+e*(-1.00776E5+e*(-1.84756E5+e*(-1.51164E5+e*(-5.4264E4+e*(-7.752E3+e*(-3.42E2-2.0*e))))))))+1.9E1*q*(4.2E1+e*(2.66E3+e*(4.0698E4+e*(2.3256E5+e*(5.8786E5+e*(7.05432E5+e*(4.0698E5+e*(1.08528E5+e*(1.197E4+e*(4.2E2+2.0*e)))))))))+2.1E1*q*(-4.6E1+e*(-3.542E3+e*(-6.7298E4+e*(-4.90314E5+e*(-1.63438E6+e*(-2.704156E6+e*(-2.288132E6+e*(-9.80628E5+e*(-2.01894E5+e*(-1.771E4+e*(-5.06E2-2.0*e))))))))))+2.3E1*q*(5.0E1+e*(4.6E3+e*(1.0626E5+e*(9.614E5+e*(4.08595E6+e*(8.9148E6+e*(1.04006E7+e*(6.53752E6+e*(2.16315E6+e*(3.542E5+e*(2.53E4+e*(6.0E2+2.0*e)))))))))))+2.5E1*q*(-5.4E1+e*(-5.85E3+e*(-1.6146E5+e*(-1.77606E6+e*(-9.37365E6+e*(-2.607579E7+e*(-4.01166E7+e*(-3.476772E7+e*(-1.687257E7+e*(-4.44015E6+e*(-5.9202E5+e*(-3.51E4+e*(-7.02E2-2.0*e))))))))))))+2.7E1*q*(5.8E1+e*(7.308E3+e*(2.3751E5+e*(3.12156E6+e*(2.003001E7+e*(6.919458E7+e*(1.3572783E8+e*(1.5511752E8+e*(1.0379187E8+e*(4.006002E7+e*(8.58429E6+e*(9.5004E5+e*(4.7502E4+e*(8.12E2+2.0*e)))))))))))))+2.9E1*q*(-6.2E1+e*(-8.99E3+e*(-3.39822E5+e*(-5.25915E6+e*(-4.032015E7+e*(-1.6934463E8+e*(-4.1250615E8+e*(-6.0108039E8+e*(-5.3036505E8+e*(-2.8224105E8+e*(-8.870433E7+e*(-1.577745E7+e*(-1.472562E6+e*(-6.293E4+e*(-9.3E2-2.0*e))))))))))))))+3.1E1*q*(6.6E1+e*(1.0912E4+e*(4.74672E5+e*(8.544096E6+e*(7.71342E7+e*(3.8707344E8+e*(1.14633288E9+e*(2.07431664E9+e*(2.33360622E9+e*(1.6376184E9+e*(7.0963464E8+e*(1.8512208E8+e*(2.7768312E7+e*(2.215136E6+e*(8.184E4+e*(1.056E3+2.0*e)))))))))))))))+3.3E1*(-7.0E1+e*(-1.309E4+e*(-6.49264E5+e*(-1.344904E7+e*(-1.4121492E8+e*(-8.344518E8+e*(-2.9526756E9+e*(-6.49588632E9+e*(-9.0751353E9+e*(-8.1198579E9+e*(-4.6399188E9+e*(-1.6689036E9+e*(-3.67158792E8+e*(-4.707164E7+e*(-3.24632E6+e*(-1.0472E5+e*(-1.19E3-2.0*e)))))))))))))))))*q)))))))))))))))))  # noqa: E501
    # fmt: on
    return (t / r) * a


@njit(cache=True, nogil=True, error_model="numpy")
def _small_t_m(h: float, t: float) -> float:
    # 12th-order expansion of [Y(h+t) - Y(h-t)] in t (Let's Be Rational); a = 1 + h*Y(h) > 0.
    a = 1.0 + h * SQRT_PI_OVER_2 * erfcx(-INV_SQRT2 * h)
    w = t * t
    h2 = h * h
    # fmt: off
    return 2.0*t*(a+w*((-1+3*a+a*h2)/6+w*((-7+15*a+h2*(-1+10*a+a*h2))/120+w*((-57+105*a+h2*(-18+105*a+h2*(-1+21*a+a*h2)))/5040+w*((-561+945*a+h2*(-285+1260*a+h2*(-33+378*a+h2*(-1+36*a+a*h2))))/362880+w*((-6555+10395*a+h2*(-4680+17325*a+h2*(-840+6930*a+h2*(-52+990*a+h2*(-1+55*a+a*h2)))))/39916800+((-89055+135135*a+h2*(-82845+270270*a+h2*(-20370+135135*a+h2*(-1926+25740*a+h2*(-75+2145*a+h2*(-1+78*a+a*h2))))))*w)/6227020800.0))))))  # noqa: E501
    # fmt: on


@njit(cache=True, nogil=True, error_model="numpy")
def normalised_black_parts(x: float, s: float) -> tuple[float, float]:
    """Normalised OTM Black price ``b(x, s)`` as ``(m, e)`` with ``b = m*exp(-e)/sqrt(2*pi)``.

    ``b(x, s) = N(x/s + s/2)*exp(x/2) - N(x/s - s/2)*exp(-x/2)``, the undiscounted OTM premium in
    units of ``sqrt(F*K)``.

    Args:
        x: ``-|ln(F/K)|``, must be ``<= 0`` (the OTM side).
        s: total standard deviation ``sigma*sqrt(T)``, ``> 0``.

    Returns:
        ``(m, e)``. ``e = (h² + t²)/2`` (``h = x/s``, ``t = s/2``) except in the cdf region, where
        ``e = 0``. The normalised vega is ``exp(-(h² + t²)/2)/sqrt(2*pi)``, so in every region but
        the cdf one ``vega/b = 1/m``.
    """
    h = x / s
    t = 0.5 * s
    e = 0.5 * (h * h + t * t)
    if x < s * _ETA and 0.5 * s * s + x < s * (_TAU + _ETA):
        return _asymptotic_m(h, t), e
    if t < _TAU:
        return _small_t_m(h, t), e
    if h + t > _CDF_FORM:
        bmax = math.exp(0.5 * x)
        b = norm_cdf(h + t) * bmax - norm_cdf(h - t) / bmax
        return SQRT_2PI * max(b, 0.0), 0.0
    m = SQRT_PI_OVER_2 * (erfcx(-INV_SQRT2 * (h + t)) - erfcx(-INV_SQRT2 * (h - t)))
    return m, e


@njit(cache=True, nogil=True, error_model="numpy")
def normalised_black(x: float, s: float) -> float:
    """Normalised OTM Black price ``b(x, s)`` for ``x <= 0``, ``s >= 0`` (0 when ``s == 0``)."""
    if s <= 0.0:
        return 0.0
    m, e = normalised_black_parts(x, s)
    return INV_SQRT_2PI * m * math.exp(-e)


@njit(cache=True, nogil=True, error_model="numpy")
def black_price(F: float, K: float, T: float, sigma: float, df: float, is_call: bool) -> float:
    """Discounted Black-76 premium, tail-accurate on both sides of the strike.

    Args:
        F: forward of the expiry (price points, > 0).
        K: strike (price points, > 0).
        T: time to expiry in years (ACT/365). ``T <= 0`` gives the discounted intrinsic value.
        sigma: Black volatility as a fraction. ``sigma <= 0`` gives the discounted intrinsic value.
        df: discount factor ``exp(-r*T)``.
        is_call: call (True) or put (False).

    Returns:
        The premium in price points; NaN when ``F``, ``K`` or ``df`` is not a positive number or any
        input is NaN.
    """
    if not (F > 0.0 and K > 0.0 and df > 0.0) or math.isnan(T) or math.isnan(sigma):
        return np.nan
    intrinsic = max(F - K, 0.0) if is_call else max(K - F, 0.0)
    if T <= 0.0 or sigma <= 0.0:
        return df * intrinsic
    x = -abs(math.log(F / K))
    otm = math.sqrt(F) * math.sqrt(K) * normalised_black(x, sigma * math.sqrt(T))
    return df * (intrinsic + otm)


@njit(cache=True, nogil=True, error_model="numpy")
def forward_from_spot(S: float, r: float, q: float, T: float) -> float:
    """Forward ``S*exp((r - q)*T)`` of a spot with continuous rate ``r`` and yield ``q``."""
    return S * math.exp((r - q) * T)


@njit(cache=True, nogil=True, error_model="numpy")
def synthetic_forward(K: float, call_price: float, put_price: float, df: float) -> float:
    """Forward implied by put-call parity at one strike: ``K + (C - P)/df``."""
    return K + (call_price - put_price) / df


@njit(cache=True, nogil=True, error_model="numpy")
def greeks_core(
    F: float,
    K: float,
    T: float,
    sqrt_t: float,
    sigma: float,
    df: float,
    ln_fk: float,
    r: float,
    S: float,
    is_call: bool,
    price: float,
) -> tuple[float, float, float, float]:
    """Raw greeks from precomputed pieces (shared by the row kernels; inputs must be valid).

    Args:
        F: forward (points, > 0).
        K: strike (points, > 0).
        T: years to expiry (> 0).
        sqrt_t: ``sqrt(T)``.
        sigma: Black volatility (fraction, > 0).
        df: ``exp(-r*T)``.
        ln_fk: ``ln(F/K)``.
        r: continuously compounded rate.
        S: spot (points); ``<= 0`` or NaN means greeks per unit of F with zero carry.
        is_call: call (True) or put (False).
        price: the option's discounted premium (enters theta through ``r*V``); NaN to have it
            computed here from ``N(d1)``/``N(d2)``. That form cancels in the far wings, but there
            ``r*V`` is smaller than theta's decay term by a factor ``~2rT/h²`` (``h = ln(F/K)/s``),
            so theta keeps full precision while saving the tail-accurate price.

    Returns:
        ``(delta, gamma, theta_yr, vega_unit)``: per point of S (or F), per point², ``dV/dt`` per
        year, per 1.00 of volatility.
    """
    s = sigma * sqrt_t
    d1 = ln_fk / s + 0.5 * s
    pdf = INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    if is_call:
        n1 = norm_cdf(d1)
        delta_f = df * n1
        if math.isnan(price):
            price = df * (F * n1 - K * norm_cdf(d1 - s))
    else:
        n1 = norm_cdf(-d1)
        delta_f = -df * n1
        if math.isnan(price):
            price = df * (K * norm_cdf(s - d1) - F * n1)
    gamma_f = df * pdf / (F * s)
    vega = df * F * pdf * sqrt_t
    theta_f = r * price - 0.5 * vega * sigma / T
    if S > 0.0 and math.isfinite(S):
        # Spot held fixed: F = S*exp(b*T) moves with T at rate b*F (module docstring).
        ratio = F / S
        carry = math.log(ratio) / T
        return delta_f * ratio, gamma_f * ratio * ratio, theta_f - carry * F * delta_f, vega
    return delta_f, gamma_f, theta_f, vega


@njit(cache=True, nogil=True, error_model="numpy")
def black_greeks_raw(
    F: float, K: float, T: float, sigma: float, r: float, S: float, is_call: bool
) -> tuple[float, float, float, float, float]:
    """Premium and raw greeks: ``(price, delta, gamma, theta_yr, vega_unit)``.

    Args:
        F: forward (points, > 0).
        K: strike (points, > 0).
        T: years to expiry (ACT/365, > 0).
        sigma: Black volatility (fraction, > 0).
        r: continuously compounded rate discounting the premium.
        S: spot index level for per-spot greeks; ``<= 0`` or NaN for per-forward greeks.
        is_call: call (True) or put (False).

    Returns:
        Discounted premium (points), delta per point, gamma per point², theta per year (``dV/dt``,
        negative for time decay), vega per 1.00 of vol. Greeks are NaN when ``T`` or ``sigma`` is
        not positive or an input is invalid; the premium then follows :func:`black_price`.
    """
    df = math.exp(-r * T) if T > 0.0 else 1.0
    if not (T > 0.0 and sigma > 0.0 and math.isfinite(T) and math.isfinite(sigma)):
        return black_price(F, K, T, sigma, df, is_call), np.nan, np.nan, np.nan, np.nan
    if not (F > 0.0 and K > 0.0 and math.isfinite(F) and math.isfinite(K) and math.isfinite(r)):
        return np.nan, np.nan, np.nan, np.nan, np.nan
    # black_price inlined so that ln(F/K) and sqrt(T) are computed once for price and greeks.
    ln_fk = math.log(F / K)
    sqrt_t = math.sqrt(T)
    intrinsic = max(F - K, 0.0) if is_call else max(K - F, 0.0)
    otm = math.sqrt(F) * math.sqrt(K) * normalised_black(-abs(ln_fk), sigma * sqrt_t)
    price = df * (intrinsic + otm)
    delta, gamma, theta, vega = greeks_core(F, K, T, sqrt_t, sigma, df, ln_fk, r, S, is_call, price)
    return price, delta, gamma, theta, vega


@njit(cache=True, nogil=True, error_model="numpy")
def black_greeks(
    F: float, K: float, T: float, sigma: float, r: float, S: float, is_call: bool
) -> tuple[float, float, float, float, float]:
    """Premium and greeks in display units: ``(price, delta, gamma, theta_day, vega_pt)``.

    Same arguments as :func:`black_greeks_raw`; theta is per calendar day (per-year / 365) and
    vega per volatility point (per-1.00 / 100).
    """
    price, delta, gamma, theta, vega = black_greeks_raw(F, K, T, sigma, r, S, is_call)
    return price, delta, gamma, theta / DAYS_PER_YEAR, vega / VOL_POINTS
