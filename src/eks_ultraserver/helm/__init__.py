"""Helm values builders of the GPU platform add-ons, one module per chart.

Each builder is a frozen value object that checks its inputs (and the user's extra values
against the chart's keys) when it is made and returns the Helm values dict the
``GpuPlatformAddons`` construct installs: ``gpu_operator`` (NVIDIA GPU Operator),
``dra_driver`` (NVIDIA DRA driver), ``efa`` (EFA device plugin or DRANET),
``mpi_operator`` (the Kubeflow MPI operator, whose Helm chart is generated from the
release manifest), and ``values`` (what they share: merging, key checks, tolerations and
affinities). Like ``charts/``, nothing here imports ``aws_cdk``.
"""
