"""Code of the Lambda functions the constructs deploy, shipped as package data (each
folder is a function's code asset: standard library and boto3 only, what the Lambda Python
runtime has, so synth never downloads or bundles anything)."""
