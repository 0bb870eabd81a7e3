/* calib.c - the sampler's calibration data (the other translation unit).
 *
 * Two tables of the same shape, in different sections:
 *   sample_limits  const   -> __TEXT,__const  (read-only once linked: r--)
 *   sample_totals  mutable -> __DATA,__data   (rw-)
 */
#include <kitlibc.h>

const long sample_limits[4] = {100, 250, 400, 800};
long sample_totals[4] = {1, 2, 3, 4};

long scaled_limit(int i) { return sample_limits[i & 3] / 10; }
