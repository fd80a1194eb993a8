#include "sq.h"
double sq(double x) { return x * x; }
