package cluster

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

const account = "123456789012"

// moto talks to the moto server directly (its JSON APIs, with an unsigned Authorization header
// naming the region and service, which moto routes by and does not verify with auth off).
type moto struct {
	url string
}

func (m *moto) call(service, region, target string, body any) (map[string]any, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, m.url+"/", bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Authorization", fmt.Sprintf(
		"AWS4-HMAC-SHA256 Credential=AKIDSEEDING/20260101/%s/%s/aws4_request, SignedHeaders=host, Signature=00", region, service))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("moto %s: HTTP %d: %s", target, resp.StatusCode, out)
	}
	var m2 map[string]any
	if err := json.Unmarshal(out, &m2); err != nil {
		return nil, fmt.Errorf("moto %s: %w", target, err)
	}
	return m2, nil
}

func (m *moto) reset() error {
	resp, err := http.Post(m.url+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// putSecret creates the secret (first call) or puts a new value; returns the new VersionId.
func (m *moto) putSecret(region, name, value string) (string, error) {
	out, err := m.call("secretsmanager", region, "secretsmanager.PutSecretValue",
		map[string]any{"SecretId": name, "SecretString": value})
	if err != nil && strings.Contains(err.Error(), "ResourceNotFoundException") {
		out, err = m.call("secretsmanager", region, "secretsmanager.CreateSecret",
			map[string]any{"Name": name, "SecretString": value})
	}
	if err != nil {
		return "", err
	}
	v, _ := out["VersionId"].(string)
	if v == "" {
		return "", fmt.Errorf("no VersionId for %s", name)
	}
	return v, nil
}

// putParameter writes a new version of an SSM parameter; returns the version number.
func (m *moto) putParameter(region, name, typ, value string) (string, error) {
	out, err := m.call("ssm", region, "AmazonSSM.PutParameter",
		map[string]any{"Name": name, "Type": typ, "Value": value, "Overwrite": true})
	if err != nil {
		return "", err
	}
	v, ok := out["Version"].(float64)
	if !ok {
		return "", fmt.Errorf("no Version for %s", name)
	}
	return fmt.Sprint(int(v)), nil
}

// ---------------------------------------------------------------------------------------------
// The AWS proxy in front of moto

// awsCall is one request the proxy saw.
type awsCall struct {
	Service, Region, AccessKey string
	Operation                  string // X-Amz-Target's operation or the query Action
	Role, Token                string // AssumeRoleWithWebIdentity's RoleArn and WebIdentityToken
	Answered                   string // "moto", "denied" or "outage"
}

// awsProxy forwards to moto and can refuse: every request signed with credentials that STS
// issued for a denied role answers AccessDeniedException, and every Secrets Manager / SSM request
// to a region in outage answers 503 ServiceUnavailable.
type awsProxy struct {
	moto   string
	server *http.Server
	url    string

	mu         sync.Mutex
	calls      []awsCall
	deniedRole map[string]bool   // role ARN → deny
	keyRole    map[string]string // access key id → role ARN it was issued for
	outage     map[string]bool   // region → 503
}

var credentialRE = regexp.MustCompile(`Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/`)

func startAWSProxy(motoURL, host string, port int) (*awsProxy, error) {
	p := &awsProxy{moto: motoURL, deniedRole: map[string]bool{}, keyRole: map[string]string{}, outage: map[string]bool{}}
	l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host, port))
	if err != nil {
		return nil, err
	}
	p.url = "http://" + l.Addr().String()
	p.server = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.server.Serve(l) }()
	return p, nil
}

func (p *awsProxy) close() { _ = p.server.Close() }

func (p *awsProxy) setOutage(region string, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outage[region] = on
}

// setDenied makes every call signed with credentials STS issued for role answer
// AccessDeniedException (on) or pass to moto again (off).
func (p *awsProxy) setDenied(role string, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deniedRole[role] = on
}

// mark is the number of calls so far; since(mark) the calls after it.
func (p *awsProxy) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

func (p *awsProxy) since(mark int) []awsCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]awsCall(nil), p.calls[mark:]...)
}

func (p *awsProxy) roleOf(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keyRole[key]
}

func (p *awsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := awsCall{}
	if m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		c.AccessKey, c.Region, c.Service = m[1], m[2], m[3]
	}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		_, c.Operation, _ = strings.Cut(t, ".")
	}
	if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
		c.Operation = form.Get("Action")
		c.Role, c.Token = form.Get("RoleArn"), form.Get("WebIdentityToken")
		if c.Service == "" {
			c.Service = "sts" // AssumeRoleWithWebIdentity is unsigned
		}
	}
	p.mu.Lock()
	role := p.keyRole[c.AccessKey]
	denied := role != "" && p.deniedRole[role] && c.Service != "sts"
	outage := p.outage[c.Region] && (c.Service == "secretsmanager" || c.Service == "ssm")
	p.mu.Unlock()

	switch {
	case denied:
		c.Answered = "denied"
		p.record(c)
		message := fmt.Sprintf("User: %s is not authorized to perform: %s:%s because no identity-based policy allows it",
			role, c.Service, c.Operation)
		awsError(w, http.StatusBadRequest, "AccessDeniedException", message)
		return
	case outage:
		c.Answered = "outage"
		p.record(c)
		awsError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "region outage (test proxy)")
		return
	}
	c.Answered = "moto"
	p.record(c)
	req, err := http.NewRequest(r.Method, p.moto+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if c.Operation == "AssumeRoleWithWebIdentity" && resp.StatusCode == http.StatusOK {
		var x struct {
			Key string `xml:"AssumeRoleWithWebIdentityResult>Credentials>AccessKeyId"`
		}
		if xml.Unmarshal(out, &x) == nil && x.Key != "" {
			p.mu.Lock()
			p.keyRole[x.Key] = c.Role
			p.mu.Unlock()
		}
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

func (p *awsProxy) record(c awsCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
}

// ---------------------------------------------------------------------------------------------
// The EKS Pod Identity agent stand-in

// agent answers GET /v1/credentials (the Authorization header is the pod's
// pods.eks.amazonaws.com token, no scheme) with container credentials whose access key id is
// agentKey when the API server's TokenReview authenticates the token for that audience, as the
// real agent has EKS check it; anything else gets 401 AccessDeniedException.
type agent struct {
	server *http.Server
	url    string
	review func(token string) (user string, ok bool)

	mu    sync.Mutex
	seen  []string // Authorization headers received
	users []string // the users TokenReview authenticated
}

const agentKey = "ASIAPODIDENTITYAGENT"

func startAgent(port int, host string, review func(string) (string, bool)) (*agent, error) {
	a := &agent{review: review}
	l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host, port))
	if err != nil {
		return nil, err
	}
	a.url = "http://" + l.Addr().String() + "/v1/credentials"
	a.server = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.server.Serve(l) }()
	return a, nil
}

func (a *agent) close() { _ = a.server.Close() }

func (a *agent) received() (tokens, users []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...), append([]string(nil), a.users...)
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/v1/credentials" || r.Method != http.MethodGet {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"code":"NotFound","message":"no such route"}`)
		return
	}
	token := r.Header.Get("Authorization")
	user, ok := a.review(token)
	a.mu.Lock()
	a.seen = append(a.seen, token)
	if ok {
		a.users = append(a.users, user)
	}
	a.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"code":"AccessDeniedException","message":"invalid or missing service account token"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId":     agentKey,
		"SecretAccessKey": "pod-identity-secret",
		"Token":           "pod-identity-session-token",
		"AccountId":       account,
		"Expiration":      time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})
}

// awsError answers as an AWS JSON protocol service does: the error type in a header and in the
// body's __type.
func awsError(w http.ResponseWriter, status int, errorType, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", errorType)
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"__type": errorType, "Message": message})
	_, _ = w.Write(body)
}
