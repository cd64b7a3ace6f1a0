// One-shot, idempotent: initiate the one-member replica set (transactions need one)
// and create Signpost's own user, which can read and write its databases and nothing else.
// Run by the `mongodb-init` service as the root user; settings come from its environment.
const replicaSet = process.env.MONGODB_REPLICA_SET;
const host = process.env.MONGODB_HOST;
const user = process.env.SIGNPOST_MONGODB_USER;
const password = process.env.SIGNPOST_MONGODB_PASSWORD;
const databases = process.env.SIGNPOST_DATABASES.split(",");

try {
  rs.status();
} catch (error) {
  rs.initiate({ _id: replicaSet, members: [{ _id: 0, host: host }] });
}
while (!db.hello().isWritablePrimary) {
  sleep(500);
}

const admin = db.getSiblingDB("admin");
const roles = databases.map((name) => ({ role: "readWrite", db: name }));
if (admin.getUser(user) === null) {
  admin.createUser({ user: user, pwd: password, roles: roles });
  print(`created user ${user}`);
} else {
  admin.updateUser(user, { pwd: password, roles: roles });
  print(`updated user ${user}`);
}
