"""Seeds and rotates the e2e data in moto. Runs inside the moto pod (its image has boto3):

    kubectl -n moto exec -i deploy/moto -- python - seed < tests/e2e/seed.py
    kubectl -n moto exec -i deploy/moto -- python - rotate VALUE < tests/e2e/seed.py
"""

import json
import sys

import boto3

KW = dict(endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
sm = boto3.client("secretsmanager", **KW)
ssm = boto3.client("ssm", **KW)


def seed():
    sm.create_secret(Name="e2e/db", SecretString=json.dumps({"username": "app", "password": "p4ss"}))
    sm.create_secret(Name="e2e/rotating", SecretString="v1")
    ssm.put_parameter(Name="/e2e/config", Value="cfg-1", Type="String")
    print("seeded")


def rotate(value):
    version = sm.put_secret_value(SecretId="e2e/rotating", SecretString=value)["VersionId"]
    print(f"rotated e2e/rotating to version {version}")


if __name__ == "__main__":
    {"seed": lambda: seed(), "rotate": lambda: rotate(sys.argv[2])}[sys.argv[1]]()
