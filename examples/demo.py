"""The main demo: the TensorFlow introduction's programs and two trained models, run by fuseflow.

    python examples/demo.py
"""

import os
import runpy
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 60 - len(title)))


def main() -> None:
    import mlp
    import plane_fitting
    import softmax_regression

    start = time.perf_counter()
    section("Introduction: hello, matmul, placeholders, powers")
    runpy.run_path(os.path.join(HERE, "intro.py"), run_name="__main__")
    section("Plane fitting (gradient descent, 201 steps)")
    plane_fitting.main()
    section("Softmax regression on digits (1000 batches of 100)")
    softmax_regression.main()
    section("MLP on digits (two hidden ReLU layers, Adam)")
    mlp.main()
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
