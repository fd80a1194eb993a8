/* A toy simulator: prints the mean of N pseudo-random draws (argv[1] = N, argv[2] = seed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000;
  unsigned s = argc > 2 ? (unsigned)atoi(argv[2]) : 1;
  double sum = 0;
  for (long i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u;
    sum += (s >> 16) / 65536.0;
  }
  printf("mean %.3f sqrt2 %.5f\n", sum / n, sqrt(2.0));
  return 0;
}
